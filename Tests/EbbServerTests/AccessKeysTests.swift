import EbbCore
@testable import EbbServer
import HTTPTypes
import Testing

/// Who may call what with `--api-key` and `--admin-api-key`.
struct AccessKeysTests {
    let both = AccessKeys(apiKey: "user-key", adminKey: "admin-key")

    func status(_ keys: AccessKeys, _ method: HTTPRequest.Method, _ path: String, _ header: String?) -> Int {
        keys.refusal(method: method, path: path, authorization: header).map { Int($0.status.code) } ?? 200
    }

    @Test func modelRoutesNeedTheUserOrTheAdminKey() {
        for path in ["/v1/completions", "/v1/chat/completions", "/tokenize"] {
            #expect(status(both, .post, path, nil) == 401)
            #expect(status(both, .post, path, "Bearer wrong") == 401)
            #expect(status(both, .post, path, "Basic user-key") == 401, "only the Bearer scheme")
            #expect(status(both, .post, path, "Bearer user-key") == 200)
            #expect(status(both, .post, path, "bearer admin-key") == 200)
        }
        #expect(status(both, .get, "/v1/models", nil) == 401)
        #expect(status(both, .get, "/elastic_ep/status", "Bearer user-key") == 200)
    }

    @Test func deploymentChangesNeedTheAdminKey() {
        #expect(status(both, .post, "/scale_elastic_ep", nil) == 401)
        #expect(status(both, .post, "/scale_elastic_ep", "Bearer user-key") == 403, "the user key is not enough")
        #expect(status(both, .post, "/scale_elastic_ep", "Bearer admin-key") == 200)
        #expect(status(both, .post, "/elastic_ep/autoscale", "Bearer user-key") == 403)
        // Without an admin key the user key guards them; without keys all is open.
        let userOnly = AccessKeys(apiKey: "user-key")
        #expect(status(userOnly, .post, "/scale_elastic_ep", nil) == 401)
        #expect(status(userOnly, .post, "/scale_elastic_ep", "Bearer user-key") == 200)
        #expect(status(AccessKeys(), .post, "/scale_elastic_ep", nil) == 200)
        // An admin key alone leaves the model routes open.
        let adminOnly = AccessKeys(adminKey: "admin-key")
        #expect(status(adminOnly, .post, "/v1/completions", nil) == 200)
        #expect(status(adminOnly, .post, "/scale_elastic_ep", "Bearer user-key") == 401)
    }

    @Test func healthMetricsAndVersionStayOpen() {
        for path in ["/health", "/metrics", "/version"] {
            #expect(status(both, .get, path, nil) == 200)
        }
        #expect(status(both, .post, "/is_scaling_elastic_ep", nil) == 200)
        #expect(status(AccessKeys(apiKey: ""), .post, "/v1/completions", nil) == 200, "an empty key is no key")
    }

    @Test func comparisonIsExact() {
        #expect(constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!constantTimeEquals(Array("abc".utf8), Array("abd".utf8)))
        #expect(!constantTimeEquals(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!constantTimeEquals([], Array("a".utf8)))
        #expect(AccessKeys.bearerToken("Bearer  tok ") == "tok")
    }
}
