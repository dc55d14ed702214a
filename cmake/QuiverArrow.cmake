# Locate Apache Arrow C++ (core + Flight) for Quiver.
#
# Order of preference:
#   1. A system Arrow with CMake config files (find_package(Arrow CONFIG)).
#   2. The Arrow C++ bundled inside the pyarrow wheel, found through the Python
#      interpreter named by QUIVER_PYTHON (default: the project's .venv). The wheel
#      ships headers under pyarrow/include and versioned libraries lib*.so.<SOVERSION>
#      (no unversioned symlinks, no CMake config), so imported targets are defined here
#      on the exact files.
#
# Either way the result is five targets: quiver::arrow, quiver::arrow_flight,
# quiver::arrow_s3 (S3FileSystem; its own library since Arrow 21, with the AWS SDK hidden
# inside it in the wheel -- never link a system AWS SDK next to it), quiver::parquet
# (the Parquet reader and writer: artifacts, the CLI's files, data views) and
# quiver::arrow_compute (compute kernels and expressions, their own library since Arrow 21:
# filters, sorts and casts of data views; call arrow::compute::Initialize() before use).
# QUIVER_ARROW_LIBDIR is set to the directory to put in binaries' RPATH (empty when
# the system Arrow is used and the loader finds it by itself).

option(QUIVER_PREFER_SYSTEM_ARROW "Use a system Arrow C++ when one is installed" ON)
set(QUIVER_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "Python interpreter whose pyarrow wheel provides Arrow C++")

set(QUIVER_ARROW_LIBDIR "")

if(QUIVER_PREFER_SYSTEM_ARROW)
  find_package(Arrow CONFIG QUIET)
  find_package(ArrowFlight CONFIG QUIET)
endif()

if(Arrow_FOUND AND ArrowFlight_FOUND)
  message(STATUS "Quiver: using system Arrow ${Arrow_VERSION}")
  add_library(quiver::arrow INTERFACE IMPORTED)
  target_link_libraries(quiver::arrow INTERFACE Arrow::arrow_shared)
  add_library(quiver::arrow_flight INTERFACE IMPORTED)
  target_link_libraries(quiver::arrow_flight INTERFACE ArrowFlight::arrow_flight_shared)
  add_library(quiver::arrow_s3 INTERFACE IMPORTED)
  find_package(ArrowS3 CONFIG QUIET)
  if(ArrowS3_FOUND)
    target_link_libraries(quiver::arrow_s3 INTERFACE ArrowS3::arrow_s3_shared)
  else()
    target_link_libraries(quiver::arrow_s3 INTERFACE Arrow::arrow_shared)
  endif()
  add_library(quiver::arrow_compute INTERFACE IMPORTED)
  find_package(ArrowCompute CONFIG QUIET)
  if(ArrowCompute_FOUND)
    target_link_libraries(quiver::arrow_compute INTERFACE ArrowCompute::arrow_compute_shared)
  else()
    target_link_libraries(quiver::arrow_compute INTERFACE Arrow::arrow_shared)
  endif()
  find_package(Parquet CONFIG REQUIRED)
  add_library(quiver::parquet INTERFACE IMPORTED)
  target_link_libraries(quiver::parquet INTERFACE Parquet::parquet_shared)
  return()
endif()

if(NOT EXISTS "${QUIVER_PYTHON}")
  message(FATAL_ERROR
    "Quiver: no system Arrow C++ and no Python at QUIVER_PYTHON=${QUIVER_PYTHON}. "
    "Run scripts/setup.sh, or pass -DQUIVER_PYTHON=/path/to/python with pyarrow installed.")
endif()

execute_process(
  COMMAND "${QUIVER_PYTHON}" -c
    "import pyarrow as pa, os; print(pa.__version__); print(os.path.dirname(pa.__file__))"
  OUTPUT_VARIABLE _quiver_pa_out
  RESULT_VARIABLE _quiver_pa_rc
  ERROR_VARIABLE _quiver_pa_err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _quiver_pa_rc EQUAL 0)
  message(FATAL_ERROR "Quiver: '${QUIVER_PYTHON}' cannot import pyarrow: ${_quiver_pa_err}")
endif()
string(REPLACE "\n" ";" _quiver_pa_out "${_quiver_pa_out}")
list(GET _quiver_pa_out 0 QUIVER_PYARROW_VERSION)
list(GET _quiver_pa_out 1 _quiver_pa_dir)

# pyarrow 26.0.1 -> SOVERSION 2600
string(REGEX MATCH "^([0-9]+)\\.([0-9]+)" _quiver_ver "${QUIVER_PYARROW_VERSION}")
math(EXPR _quiver_so "${CMAKE_MATCH_1} * 100 + ${CMAKE_MATCH_2}")

set(_quiver_inc "${_quiver_pa_dir}/include")
set(_quiver_arrow_so "${_quiver_pa_dir}/libarrow.so.${_quiver_so}")
set(_quiver_flight_so "${_quiver_pa_dir}/libarrow_flight.so.${_quiver_so}")
set(_quiver_s3_so "${_quiver_pa_dir}/libarrow_s3.so.${_quiver_so}")
set(_quiver_parquet_so "${_quiver_pa_dir}/libparquet.so.${_quiver_so}")
set(_quiver_compute_so "${_quiver_pa_dir}/libarrow_compute.so.${_quiver_so}")
foreach(_f "${_quiver_inc}/arrow/api.h" "${_quiver_inc}/arrow/flight/api.h"
           "${_quiver_inc}/arrow/filesystem/s3fs.h" "${_quiver_inc}/parquet/arrow/reader.h"
           "${_quiver_inc}/arrow/compute/api.h" "${_quiver_compute_so}"
           "${_quiver_arrow_so}" "${_quiver_flight_so}" "${_quiver_s3_so}" "${_quiver_parquet_so}")
  if(NOT EXISTS "${_f}")
    message(FATAL_ERROR "Quiver: pyarrow ${QUIVER_PYARROW_VERSION} wheel lacks ${_f}")
  endif()
endforeach()

add_library(quiver::arrow SHARED IMPORTED GLOBAL)
set_target_properties(quiver::arrow PROPERTIES
  IMPORTED_LOCATION "${_quiver_arrow_so}"
  IMPORTED_NO_SONAME FALSE
  INTERFACE_INCLUDE_DIRECTORIES "${_quiver_inc}"
  # The wheel is built with the new libstdc++ ABI; say so explicitly so that a
  # toolchain defaulting to the old one fails loudly at link time instead of at run time.
  INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=1")

add_library(quiver::arrow_flight SHARED IMPORTED GLOBAL)
set_target_properties(quiver::arrow_flight PROPERTIES
  IMPORTED_LOCATION "${_quiver_flight_so}"
  INTERFACE_LINK_LIBRARIES quiver::arrow)

add_library(quiver::arrow_s3 SHARED IMPORTED GLOBAL)
set_target_properties(quiver::arrow_s3 PROPERTIES
  IMPORTED_LOCATION "${_quiver_s3_so}"
  INTERFACE_LINK_LIBRARIES quiver::arrow)

add_library(quiver::parquet SHARED IMPORTED GLOBAL)
set_target_properties(quiver::parquet PROPERTIES
  IMPORTED_LOCATION "${_quiver_parquet_so}"
  INTERFACE_LINK_LIBRARIES quiver::arrow)

add_library(quiver::arrow_compute SHARED IMPORTED GLOBAL)
set_target_properties(quiver::arrow_compute PROPERTIES
  IMPORTED_LOCATION "${_quiver_compute_so}"
  INTERFACE_LINK_LIBRARIES quiver::arrow)

set(QUIVER_ARROW_LIBDIR "${_quiver_pa_dir}")
message(STATUS "Quiver: using Arrow C++ from pyarrow ${QUIVER_PYARROW_VERSION} wheel at ${_quiver_pa_dir}")
