// Reading small files whole (internal): model configs, vocabularies.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace maskattn::detail {

// The file's bytes. Error(argument, "a readable file", why) for a directory,
// a path that cannot be opened (with the system's reason) or a read error.
std::string read_file(const std::filesystem::path& path, std::string_view argument);

}  // namespace maskattn::detail
