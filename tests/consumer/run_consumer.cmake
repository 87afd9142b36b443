# The install + find_package proof, run by CTest as a script:
#   cmake -DBUILD_DIR=<maskattn build> -DWORK_DIR=<scratch dir>
#         -DCONSUMER_SOURCE=<tests/consumer> -DGENERATOR=<generator>
#         -DCXX_COMPILER=<compiler> -P run_consumer.cmake
# Installs the build tree into WORK_DIR/prefix, configures and builds the
# consumer project against that prefix only, checks that it found the
# installed package (not the build tree), and runs it.
foreach(var BUILD_DIR WORK_DIR CONSUMER_SOURCE GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(consumer_build ${WORK_DIR}/build)

include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/run_or_fail.cmake)

file(REMOVE_RECURSE ${prefix} ${consumer_build})
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE} -B ${consumer_build} -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)

# maskattn must come from the prefix just installed.
file(STRINGS ${consumer_build}/CMakeCache.txt found_dir REGEX "^maskattn_DIR:")
string(REGEX REPLACE "^maskattn_DIR:[A-Z]+=" "" found_dir "${found_dir}")
cmake_path(IS_PREFIX prefix "${found_dir}" NORMALIZE from_prefix)
if(NOT from_prefix)
  message(FATAL_ERROR "find_package(maskattn) used ${found_dir}, not the install prefix ${prefix}")
endif()

run(${CMAKE_COMMAND} --build ${consumer_build})
run(${consumer_build}/maskattn_consumer)
