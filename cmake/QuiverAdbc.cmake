# Locate ADBC for Quiver's exec/ module: the adbc.h header from the adbc-driver-manager
# wheel and the SQLite / PostgreSQL driver libraries from their wheels, all in the
# project virtualenv (QUIVER_PYTHON). Drivers are loaded at run time with dlopen, so they
# are not linked; their paths become the defaults of the "sqlite" and "postgresql" driver
# names (QUIVER_ADBC_DRIVER_DIR overrides them at run time).

execute_process(
  COMMAND "${QUIVER_PYTHON}" -c [=[
import importlib.util, os
def pkg(name):
    spec = importlib.util.find_spec(name)
    return os.path.dirname(spec.origin) if spec else ""
m = pkg("adbc_driver_manager")
print(os.path.join(m, "arrow-adbc") if m else "")
for d in ("adbc_driver_sqlite", "adbc_driver_postgresql"):
    p = pkg(d)
    print(os.path.join(p, "lib%s.so" % d) if p else "")
]=]
  OUTPUT_VARIABLE _quiver_adbc_out
  RESULT_VARIABLE _quiver_adbc_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _quiver_adbc_rc EQUAL 0)
  message(FATAL_ERROR "Quiver: could not query ${QUIVER_PYTHON} for the ADBC wheels")
endif()
string(REPLACE "\n" ";" _quiver_adbc_out "${_quiver_adbc_out}")
list(GET _quiver_adbc_out 0 QUIVER_ADBC_INCLUDE_DIR)
list(GET _quiver_adbc_out 1 QUIVER_ADBC_SQLITE_DRIVER)
list(GET _quiver_adbc_out 2 QUIVER_ADBC_POSTGRESQL_DRIVER)

if(NOT EXISTS "${QUIVER_ADBC_INCLUDE_DIR}/adbc.h")
  message(FATAL_ERROR "Quiver: adbc.h not found; install adbc-driver-manager into the venv "
                      "(scripts/setup.sh does)")
endif()
foreach(_d QUIVER_ADBC_SQLITE_DRIVER QUIVER_ADBC_POSTGRESQL_DRIVER)
  if(NOT EXISTS "${${_d}}")
    message(FATAL_ERROR "Quiver: ${_d} not found ('${${_d}}'); run scripts/setup.sh")
  endif()
endforeach()
message(STATUS "Quiver: ADBC header in ${QUIVER_ADBC_INCLUDE_DIR}")
