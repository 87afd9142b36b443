# The ThreadSanitizer build (the tsan preset, MASKATTN_TSAN=ON): one OpenMP
# runtime that TSan understands, for our parallel_for and for oneDNN alike.
#
# TSan sees a race wherever two threads touch memory without a synchronisation
# it knows of. GNU libgomp's barriers and task hand-offs are futexes and atomics
# inside an uninstrumented library, so every parallel_for under gcc's
# -fsanitize=thread reports false races. LLVM's libomp tells TSan about its
# synchronisation through Archer, its OMPT tool (libarcher), so the build uses
# clang with libomp and links Archer's static library into every executable:
# libomp finds its ompt_start_tool() at start-up without OMP_TOOL_LIBRARIES.
#
# Debian's libdnnl is linked against libgomp.so.1 and would bring the second,
# uninstrumented runtime back. libomp implements libgomp's ABI (GOMP_* and
# omp_* with libgomp's symbol versions), so a libgomp.so.1 in the build tree
# that is libomp (a symbolic link), found first through the executables'
# DT_RPATH (which, unlike DT_RUNPATH, also serves the libraries they load),
# makes oneDNN's threads libomp's too: one runtime, every barrier seen.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "MASKATTN_TSAN needs clang (LLVM's OpenMP runtime and Archer); "
    "CMAKE_CXX_COMPILER is ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER}")
endif()
if(NOT OpenMP_omp_LIBRARY)
  message(FATAL_ERROR "MASKATTN_TSAN: FindOpenMP found no libomp (Debian: libomp-14-dev)")
endif()
file(REAL_PATH ${OpenMP_omp_LIBRARY} maskattn_libomp)
get_filename_component(maskattn_llvm_lib_dir ${OpenMP_omp_LIBRARY} DIRECTORY)
find_library(MASKATTN_ARCHER_STATIC libarcher_static.a HINTS ${maskattn_llvm_lib_dir} REQUIRED
  DOC "LLVM's Archer (libomp-14-dev): libomp's synchronisation for ThreadSanitizer")

set(maskattn_openmp_dir ${PROJECT_BINARY_DIR}/openmp)
file(MAKE_DIRECTORY ${maskattn_openmp_dir})
file(CREATE_LINK ${maskattn_libomp} ${maskattn_openmp_dir}/libgomp.so.1 SYMBOLIC)
# Every executable: that directory in its DT_RPATH (not DT_RUNPATH), and all of
# Archer (nothing references it: libomp looks its ompt_start_tool up by name).
set(maskattn_tsan_executable_link_options
  LINKER:--disable-new-dtags "LINKER:-rpath,${maskattn_openmp_dir}"
  LINKER:--whole-archive ${MASKATTN_ARCHER_STATIC} LINKER:--no-whole-archive)
add_link_options(
  "$<$<STREQUAL:$<TARGET_PROPERTY:TYPE>,EXECUTABLE>:${maskattn_tsan_executable_link_options}>")

# TSan turns every load and store into a call into its runtime, so no loop can
# be vectorised; clang then warns that it could not honour `#pragma omp simd`
# (-Wpass-failed). A property of the instrumented build, not of the code.
add_compile_options(-Wno-pass-failed)
