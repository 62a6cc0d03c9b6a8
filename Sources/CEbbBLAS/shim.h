#ifndef CEBBBLAS_SHIM_H
#define CEBBBLAS_SHIM_H
// OpenBLAS from Debian's libopenblas-dev. Its cblas.h also declares
// openblas_set_num_threads / openblas_get_num_threads.
#include <cblas.h>
#endif
