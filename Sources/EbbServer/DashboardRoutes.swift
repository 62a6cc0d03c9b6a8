import EbbCore
import Foundation
import Hummingbird

extension OpenAIServer {
    /// `GET /dashboard` (the page, open like `/health`: it holds no data) and
    /// `GET /dashboard/data` (what it draws, behind the user key like the model routes).
    func addDashboardRoutes(_ router: Router<EbbRequestContext>) {
        router.get("/dashboard") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            // Everything the page needs is in it: nothing may load from elsewhere.
            headers[.contentSecurityPolicy] = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html)))
        }
        router.get("/dashboard/data") { [self] _, _ in Self.json(dashboardData()) }
    }

    /// The model, the deployment's status and history (null without elastic EP), and the
    /// engine's own load.
    func dashboardData() -> JSONValue {
        let s = engine.stats
        return .orderedObject(keys: ["model", "status", "timeline", "engine"], values: [
            "model": .string(modelName),
            "status": scaling?.statusJSON() ?? .null,
            "timeline": scaling?.timelineJSON() ?? .orderedObject(keys: ["samples", "events"], values: ["samples": .array([]), "events": .array([])]),
            "engine": .orderedObject(keys: ["running", "waiting", "kv_cache_usage"], values: [
                "running": .number(Double(s.running)), "waiting": .number(Double(s.waiting)),
                "kv_cache_usage": .number(s.kvCacheUsage.isFinite ? s.kvCacheUsage : 0),
            ]),
        ])
    }
}
