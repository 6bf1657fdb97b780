// os/files.hpp — the few file operations that make state on disk safe: a private directory, a
// file replaced whole or not at all, and the directory fsync that makes a rename durable.
#pragma once

#include <string>

#include "bus/result.hpp"

namespace bus::detail {

/// Makes `path` (and its parents) if missing; it must be ours and is made mode 0700.
Status make_private_dir(const std::string& path);
/// Writes `text` to `path` whole or not at all: a temporary file (0600), fsync, rename.
Status write_file_atomically(const std::string& path, const std::string& text);
/// fsync of a directory: a rename in it survives a power cut.
Status sync_directory(const std::string& path);

}  // namespace bus::detail
