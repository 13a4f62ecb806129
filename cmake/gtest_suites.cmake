# Registers one ctest test per GoogleTest suite of a test binary (run at ctest time, through the
# TEST_INCLUDE_FILES the tests' CMakeLists.txt sets). One process per suite instead of one per
# test: a process start loads LibTorch (~0.7 s), and the tests of a suite share what they build
# once (e.g. the DPO tests' shared runs). Inputs: TEST_EXECUTABLE, CTEST_FILE (written), LABELS,
# TIMEOUT, optionally SKIP_REGEX (a suite whose output matches it is reported as skipped) and
# ISOLATED (suites whose tests need a process each, e.g. ones that measure the process's peak
# memory: one ctest test per test for them).
cmake_policy(SET CMP0057 NEW)  # if(... IN_LIST ...)
execute_process(COMMAND "${TEST_EXECUTABLE}" --gtest_list_tests
                OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${TEST_EXECUTABLE} --gtest_list_tests failed (${rc})")
endif()
string(REPLACE "\n" ";" lines "${listing}")
set(script "")
set(suite "")
function(add_one name filter)
  string(CONCAT line
    "add_test([=[${name}]=] [==[${TEST_EXECUTABLE}]==] [=[--gtest_filter=${filter}]=])\n"
    "set_tests_properties([=[${name}]=] PROPERTIES LABELS [=[${LABELS}]=] TIMEOUT ${TIMEOUT}")
  if(SKIP_REGEX)
    string(APPEND line " SKIP_REGULAR_EXPRESSION [=[${SKIP_REGEX}]=]")
  endif()
  string(APPEND script "${line})\n")
  set(script "${script}" PARENT_SCOPE)
endfunction()
foreach(line ${lines})
  # Suite lines start in column 0 and end with '.' (then maybe "  # TypeParam = ..."); test lines
  # are indented (then maybe "  # GetParam() = ..."); gtest_main's banner has no '.' at the end.
  if(line MATCHES "^([^ #][^ ]*)\\.( .*)?$")
    set(suite "${CMAKE_MATCH_1}")
    if(NOT suite IN_LIST ISOLATED)
      add_one("${suite}" "${suite}.*")
    endif()
  elseif(suite IN_LIST ISOLATED AND line MATCHES "^  ([^ ]+)")
    add_one("${suite}.${CMAKE_MATCH_1}" "${suite}.${CMAKE_MATCH_1}")
  endif()
endforeach()
file(WRITE "${CTEST_FILE}" "${script}")
