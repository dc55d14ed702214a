// Arrow's compute kernels live in their own library since Arrow 21 and are registered by
// arrow::compute::Initialize(); everything here that casts, filters or sorts calls
// InitializeCompute() first.
//
// Thread-safety: safe to call concurrently; the registration runs once.
#pragma once

#include <arrow/compute/initialize.h>
#include <arrow/status.h>

namespace quiver {

/// \brief Register Arrow's compute kernels (once per process).
inline arrow::Status InitializeCompute() {
  static const arrow::Status status = arrow::compute::Initialize();
  return status;
}

}  // namespace quiver
