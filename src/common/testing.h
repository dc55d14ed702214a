// GoogleTest helpers for arrow::Status / arrow::Result (the wheel ships no libarrow_testing).
#pragma once

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include <arrow/result.h>
#include <arrow/status.h>

#define QUIVER_CONCAT_INNER(a, b) a##b
#define QUIVER_CONCAT(a, b) QUIVER_CONCAT_INNER(a, b)

#define ASSERT_OK(expr)                                 \
  do {                                                  \
    ::arrow::Status _st = ::arrow::ToStatus(expr);      \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (false)

#define EXPECT_OK(expr)                                 \
  do {                                                  \
    ::arrow::Status _st = ::arrow::ToStatus(expr);      \
    EXPECT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (false)

#define QUIVER_ASSIGN_OR_FAIL_IMPL(tmp, lhs, rexpr)            \
  auto tmp = (rexpr);                                          \
  ASSERT_TRUE(tmp.ok()) << #rexpr << ": " << tmp.status().ToString(); \
  lhs = std::move(tmp).ValueUnsafe();

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  QUIVER_ASSIGN_OR_FAIL_IMPL(QUIVER_CONCAT(_quiver_r_, __COUNTER__), lhs, rexpr)

namespace quiver::testing_util {

/// \brief Polls `predicate` until it holds (true) or `timeout` passes (false): for events a
/// test can observe but not be told of.
template <typename Predicate>
bool Eventually(Predicate predicate,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace quiver::testing_util
