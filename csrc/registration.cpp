// fastrnn's op library (schemas in schemas.h) and the (empty) Python module that loads it.
#include <Python.h>
#include <torch/library.h>

#include "schemas.h"

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(fastrnn, m) { fastrnn::define_ops(m); }
