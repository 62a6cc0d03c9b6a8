// EbbModel
