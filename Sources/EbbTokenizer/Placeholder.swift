// EbbTokenizer
