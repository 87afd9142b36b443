# `pip install <source>` into a fresh virtual environment, then use the
# installed package from outside the source tree. Run by CTest as a script:
#   cmake -DPython_EXECUTABLE=<python> -DSOURCE_DIR=<repo> -DWORK_DIR=<scratch> -P ...
# pip builds the wheel in an isolated environment with the build requirements
# of pyproject.toml (scikit-build-core, nanobind) from PyPI or pip's cache;
# the CMake build directory is kept in WORK_DIR so a rerun is incremental.
foreach(var Python_EXECUTABLE SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "pip_install_clean_venv.cmake: -D${var}=... is required")
  endif()
endforeach()

include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/run_or_fail.cmake)

set(venv ${WORK_DIR}/venv)
file(REMOVE_RECURSE ${venv})
run(${Python_EXECUTABLE} -m venv ${venv})
run(${venv}/bin/python -m pip install --quiet --disable-pip-version-check
    --config-settings=build-dir=${WORK_DIR}/build ${SOURCE_DIR})

# From a directory that holds no maskattn sources, so the import can only
# find the installed package.
file(WRITE ${WORK_DIR}/check.py [=[
import os, numpy as np, maskattn as ma
assert os.path.dirname(ma.__file__).startswith(os.environ["VENV"]), ma.__file__
q = np.ones((1, 1, 3, 2), np.float32)
out = ma.attention(q, q, q, ma.causal() & ma.key_lengths([2]))
assert out.shape == (1, 1, 3, 2) and np.isfinite(out).all(), out
print("installed maskattn", ma.__version__, "from", os.path.dirname(ma.__file__))
]=])
execute_process(COMMAND ${CMAKE_COMMAND} -E env VENV=${venv} ${venv}/bin/python ${WORK_DIR}/check.py
  WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the installed package did not import and run (${rc})")
endif()
