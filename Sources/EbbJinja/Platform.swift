import Foundation

func cPow(_ x: Double, _ y: Double) -> Double { Foundation.pow(x, y) }

func cFormat(_ d: Double, precision: Int) -> String {
    String(format: "%.\(precision)f", d)
}

/// `strftime` of the current local time (transformers' `strftime_now`).
func strftimeNow(_ format: String) -> String {
    var t = time(nil)
    var tmv = tm()
    guard localtime_r(&t, &tmv) != nil else { return "" }
    var buf = [Int8](repeating: 0, count: 512)
    let n = strftime(&buf, buf.count, format, &tmv)
    guard n > 0 else { return "" }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
