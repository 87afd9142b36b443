#include "core/files.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "maskattn/error.hpp"

namespace maskattn::detail {

std::string read_file(const std::filesystem::path& path, std::string_view argument) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error(argument, "a readable file", "a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(argument, "a readable file", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(argument, "a readable file", "a read error");
  return std::move(text).str();
}

}  // namespace maskattn::detail
