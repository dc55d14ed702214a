// WatchForDamage: a reader that reports, once, that the blob under it failed authentication
// (an encrypted blob tampered with, truncated or swapped: storage/encrypted_blob_store.h).
//
// A damaged chunk is found only when a read reaches it, which may be in the middle of a
// stream that is already going out to a client: that client gets the error; the callback
// takes the damaged copy out of service so that the next request does not meet it again.
//
// Thread-safety: as arrow::io::RandomAccessFile; the callback may run on any reading thread.
#pragma once

#include <functional>
#include <memory>

#include <arrow/io/interfaces.h>
#include <arrow/status.h>

namespace quiver {

using DamageCallback = std::function<void(const arrow::Status&)>;

/// \brief `file`, calling `on_damage` the first time one of its reads fails authentication.
std::shared_ptr<arrow::io::RandomAccessFile> WatchForDamage(
    std::shared_ptr<arrow::io::RandomAccessFile> file, DamageCallback on_damage);

}  // namespace quiver
