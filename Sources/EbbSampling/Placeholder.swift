// EbbSampling
