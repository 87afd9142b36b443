// A benchmark's helper process: this program started again (/proc/self/exe)
// with one flag, an environment less some variables, and two pipes — its
// stdin for requests, its stdout for answers, both plain bytes. For what a
// running process cannot change about itself: a library that reads an
// environment variable once, when it loads (OpenBLAS's OPENBLAS_CORETYPE), or
// a measurement that must start from a fresh address space (peak memory).
#pragma once

#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

extern char** environ;

namespace bench {

// The whole of n bytes, or false (end of file, error).
inline bool read_all(int fd, void* p, std::size_t n) {
  auto* bytes = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t got = read(fd, bytes, n);
    if (got <= 0) return false;
    bytes += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

inline bool write_all(int fd, const void* p, std::size_t n) {
  const auto* bytes = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t put = write(fd, bytes, n);
    if (put <= 0) return false;
    bytes += put;
    n -= static_cast<std::size_t>(put);
  }
  return true;
}

// In the child: one answer on stdout.
template <class T>
bool answer(const T& value) {
  return write_all(STDOUT_FILENO, &value, sizeof value);
}

// In the parent. The parent should ignore SIGPIPE, so that a dead child shows
// as a failed call here rather than a killed parent.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { stop(); }

  // Starts `/proc/self/exe flag` with the environment minus every variable
  // named in drop_env. False (and unusable) on failure.
  bool start(const std::string& flag, std::span<const std::string_view> drop_env = {}) {
    stop();
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0) return false;
    if (pipe(from_child) != 0) {
      close(to_child[0]);
      close(to_child[1]);
      return false;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]})
      posix_spawn_file_actions_addclose(&actions, fd);
    std::vector<char*> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view var(*e);
      bool drop = false;
      for (std::string_view name : drop_env)
        drop = drop || (var.starts_with(name) && var.substr(name.size()).starts_with('='));
      if (!drop) env.push_back(*e);
    }
    env.push_back(nullptr);
    std::string exe = "/proc/self/exe", arg = flag;
    char* argv[] = {exe.data(), arg.data(), nullptr};
    const int rc = posix_spawn(&pid_, exe.c_str(), &actions, nullptr, argv, env.data());
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    to_ = to_child[1];
    from_ = from_child[0];
    if (rc != 0) {
      pid_ = 0;
      stop();
      return false;
    }
    return true;
  }

  // Sends a request (unless `Request` is std::nullptr_t) and reads an answer
  // of type T; nullopt, and the child stopped, if either fails.
  template <class T, class Request = std::nullptr_t>
  std::optional<T> ask(const Request& request = nullptr) {
    if (to_ < 0) return std::nullopt;
    if constexpr (!std::is_same_v<Request, std::nullptr_t>) {
      if (!write_all(to_, &request, sizeof request)) {
        stop();
        return std::nullopt;
      }
    }
    T value{};
    if (!read_all(from_, &value, sizeof value)) {
      stop();
      return std::nullopt;
    }
    return value;
  }

  // Closes the pipes (the child sees the end of its requests) and waits for it.
  void stop() {
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    to_ = from_ = -1;
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

 private:
  pid_t pid_ = 0;
  int to_ = -1, from_ = -1;
};

}  // namespace bench
