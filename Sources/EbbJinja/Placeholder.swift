// EbbJinja
