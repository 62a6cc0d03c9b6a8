import ArgumentParser
import EbbCore
import EbbCUDA
import EbbTensor

/// The backend a `--device` string names: `cpu`, `cuda` (device 0) or `cuda:N`. CUDA
/// computes in `dtype` (`bf16`, the default, or `f32` to compare against f32 references).
/// Throws a clear error when CUDA or the device is missing.
func makeBackend(device: String, threads: Int? = nil, dtype: String = "bf16") throws -> any Backend {
    guard let index = try cudaDeviceIndex(device) else { return CPUBackend(threads: threads) }
    let computeDType: DType
    switch dtype.lowercased() {
    case "bf16", "bfloat16": computeDType = .bf16
    case "f32", "float32": computeDType = .f32
    default: throw EbbError(.invalidArgument, "--dtype must be bf16 or f32 (got '\(dtype)')")
    }
    return try CUDABackend(device: index, computeDType: computeDType)
}

/// The CUDA device index a `--device` string names (`cuda` = 0), or nil for `cpu`.
func cudaDeviceIndex(_ device: String) throws -> Int? {
    let spec = device.lowercased()
    if spec == "cpu" { return nil }
    guard spec == "cuda" || spec.hasPrefix("cuda:") else {
        throw EbbError(.invalidArgument, "--device must be cpu, cuda or cuda:N (got '\(device)')")
    }
    guard spec.hasPrefix("cuda:") else { return 0 }
    guard let i = Int(spec.dropFirst(5)), i >= 0 else {
        throw EbbError(.invalidArgument, "--device \(device): the device index must be a non-negative integer")
    }
    return i
}

/// `--device`, `--dtype`, `--load-format` and `--num-layers`, shared by `generate`,
/// `logits` and `bench forward`.
struct DeviceModelOptions: ParsableArguments {
    @Option(help: "cpu, cuda or cuda:N")
    var device: String = "cpu"

    @Option(help: "Compute dtype on CUDA: bf16 or f32 (the CPU computes in f32)")
    var dtype: String = "bf16"

    @OptionGroup var weights: WeightOptions

    func backend(threads: Int?) throws -> any Backend {
        try makeBackend(device: device, threads: threads, dtype: dtype)
    }

    func load(_ spec: String, backend: any Backend, needTokenizer: Bool) throws -> LoadedModel {
        try LoadedModel.load(spec, weights: weights, backend: backend, needTokenizer: needTokenizer)
    }
}

