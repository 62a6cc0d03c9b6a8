// EbbEngine
