// safetensors: open = mmap + check every header entry against the file's size
// before any view is handed out; save = the reference writer's layout
// (huggingface/safetensors, src/tensor.rs: prepare() and Metadata's
// Serialize), written to a temporary file and renamed over the target.
#include "maskattn/io/safetensors.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

namespace maskattn {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and is read in place");

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// The reference reader's limit (MAX_HEADER_SIZE): a larger N is a corrupt
// length field, not a header.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kSupportedNames = "BOOL, U8, I32, I64, F32 or F64";

struct DtypeInfo {
  std::string_view name;
  int64_t bits;                // per element: F4 packs two to a byte
  std::optional<DType> dtype;  // the library's, when it has one
};

// In the reference's enum order. Its writer puts larger ranks first, so each
// tensor starts at a multiple of its element size (sizes only grow down the
// list) and the 8-byte-padded header keeps the data section aligned.
constexpr std::array<DtypeInfo, 22> kDtypes = {{
    {"BOOL", 8, DType::Bool},         {"F4", 4, std::nullopt},
    {"F6_E2M3", 6, std::nullopt},     {"F6_E3M2", 6, std::nullopt},
    {"U8", 8, DType::UInt8},          {"I8", 8, std::nullopt},
    {"F8_E5M2", 8, std::nullopt},     {"F8_E4M3", 8, std::nullopt},
    {"F8_E8M0", 8, std::nullopt},     {"F8_E4M3FNUZ", 8, std::nullopt},
    {"F8_E5M2FNUZ", 8, std::nullopt}, {"I16", 16, std::nullopt},
    {"U16", 16, std::nullopt},        {"F16", 16, std::nullopt},
    {"BF16", 16, std::nullopt},       {"I32", 32, DType::Int32},
    {"U32", 32, std::nullopt},        {"F32", 32, DType::Float32},
    {"C64", 64, std::nullopt},        {"F64", 64, DType::Float64},
    {"I64", 64, DType::Int64},        {"U64", 64, std::nullopt},
}};

const DtypeInfo* find_dtype(std::string_view name) {
  for (const DtypeInfo& d : kDtypes)
    if (d.name == name) return &d;
  return nullptr;
}

// Index of `t` in kDtypes: its sort rank.
std::size_t dtype_rank(DType t) {
  for (std::size_t i = 0; i < kDtypes.size(); ++i)
    if (kDtypes[i].dtype == t) return i;
  return 0;
}

// A path or name in double quotes, JSON-escaped, with bytes that are not
// UTF-8 replaced (U+FFFD): messages stay valid text (Python decodes them).
std::string json_quoted(std::string_view s) {
  return Json(std::string(s)).dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

std::string file_arg(const std::string& path) {
  return fmt::format("safetensors file {}", json_quoted(path));
}

std::string tensor_arg(const std::string& path, std::string_view name) {
  return fmt::format("{}, tensor {}", file_arg(path), json_quoted(name));
}

std::string errno_text(int err) { return std::system_category().message(err); }

// A JSON value for a message: ASCII, at most ~60 characters, and never a
// recursive dump (a header may nest arrays millions deep).
std::string brief(const Json& j) {
  constexpr std::size_t kMax = 60;
  const auto ascii = [](const Json& v) { return v.dump(-1, ' ', /*ensure_ascii=*/true); };
  std::string s;
  if (j.is_object()) {
    s = "an object with keys ";
    for (auto it = j.begin(); it != j.end() && s.size() <= kMax; ++it)
      s += (it == j.begin() ? "" : ", ") + ascii(it.key());
    if (j.empty()) s = "an empty object";
  } else if (j.is_array()) {
    s = "[";
    for (auto it = j.begin(); it != j.end() && s.size() <= kMax; ++it)
      s += (it == j.begin() ? "" : ",") + (it->is_structured() ? std::string("...") : ascii(*it));
    s += "]";
  } else {
    s = ascii(j);
  }
  if (s.size() > kMax) s = s.substr(0, kMax - 3) + "...";
  return s;
}

// Printable ASCII for a message built from file bytes (nlohmann's parse
// errors quote the bytes they stopped at, which may be anything).
std::string printable(std::string_view s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f)
      out += c;
    else
      out += fmt::format("\\x{:02x}", u);
  }
  return out;
}

// A non-negative integer that fits int64: nlohmann reads 3 as unsigned, -3 as
// signed and 3.0 / 1e30 as float.
std::optional<int64_t> as_size(const Json& j) {
  if (j.is_number_unsigned()) {
    const auto v = j.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return static_cast<int64_t>(v);
    return std::nullopt;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) return j.get<int64_t>();
  return std::nullopt;
}

// The whole file, mapped read-only (nothing mapped for an empty file: mmap
// cannot map 0 bytes, and parse() rejects it).
class Mapping {
 public:
  explicit Mapping(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(file_arg(path), "a readable file", errno_text(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw Error(file_arg(path), "a readable file", errno_text(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw Error(file_arg(path), "a regular file", "a directory or device");
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) {
      ::close(fd);
      return;
    }
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);  // the mapping keeps the file open
    if (p == MAP_FAILED) throw Error(file_arg(path), "a file that can be mapped", errno_text(err));
    data_ = static_cast<const std::byte*>(p);
  }
  ~Mapping() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  const std::byte* data() const noexcept { return data_; }
  uint64_t size() const noexcept { return size_; }

 private:
  const std::byte* data_ = nullptr;
  uint64_t size_ = 0;
};

struct Entry {
  const DtypeInfo* info = nullptr;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // byte offsets into the data section
  const void* data = nullptr;  // set once the whole header is checked
};

// Parses the header; an object repeating a key is an Error (nlohmann would keep
// the last silently, so two tensors of one name would become one).
Json parse_header(std::string_view text, const std::string& path) {
  std::vector<std::set<std::string>> open_objects;  // keys seen in each
  const auto no_duplicates = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case Json::parse_event_t::object_end: open_objects.pop_back(); break;
      case Json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second)
          throw Error(file_arg(path), "a JSON header without duplicate keys",
                      fmt::format("key {} twice in one object", json_quoted(key)));
        break;
      }
      default: break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), no_duplicates);
  } catch (const Json::exception& e) {
    // parse_error, and out_of_range for a number no double holds (1e400).
    throw Error(file_arg(path), "a JSON header",
                fmt::format("{} (header of {} bytes)", printable(e.what()), text.size()));
  }
}

std::map<std::string, std::string> read_metadata(const Json& j, const std::string& path) {
  const std::string arg = file_arg(path) + " __metadata__";
  std::map<std::string, std::string> out;
  if (j.is_null()) return out;  // the reference writes none, and reads null as none
  if (!j.is_object()) throw Error(arg, "an object of strings", brief(j));
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string())
      throw Error(fmt::format("{}[{}]", arg, json_quoted(key)), "a string", brief(value));
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

// One tensor's entry, checked against the data section's size; data unset.
Entry read_entry(const std::string& name, const Json& j, int64_t data_bytes,
                 const std::string& path) {
  const std::string arg = tensor_arg(path, name);
  if (!j.is_object()) throw Error(arg, "an object with dtype, shape and data_offsets", brief(j));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!j.contains(field)) throw Error(arg, fmt::format("a \"{}\" field", field), brief(j));

  Entry e;
  const Json& dtype = j.at("dtype");
  if (dtype.is_string()) e.info = find_dtype(dtype.get_ref<const std::string&>());
  if (e.info == nullptr)
    throw Error(arg + " dtype", "a safetensors dtype (F32, BF16, I64, ...)", brief(dtype));

  const Json& shape = j.at("shape");
  if (!shape.is_array())
    throw Error(arg + " shape", "a list of non-negative integers", brief(shape));
  // As checked_numel (tensor.hpp) counts, with a brief message: the non-zero
  // sizes' product must fit too, or the view's strides would overflow.
  int64_t nonzero = 1;
  bool empty = false;
  for (const Json& s : shape) {
    const std::optional<int64_t> size = as_size(s);
    if (!size) throw Error(arg + " shape", "a list of non-negative integers", brief(shape));
    e.shape.push_back(*size);
    empty = empty || *size == 0;
    if (*size > 0 && __builtin_mul_overflow(nonzero, *size, &nonzero))
      throw Error(arg + " shape", "an element count that fits in int64", brief(shape));
  }
  const int64_t numel = empty ? 0 : nonzero;
  int64_t bits = 0;
  if (__builtin_mul_overflow(numel, e.info->bits, &bits))
    throw Error(arg + " shape", "a byte size that fits in int64", brief(shape));
  if (bits % 8 != 0)
    throw Error(arg + " shape", fmt::format("a whole number of bytes of {}", e.info->name),
                fmt::format("{} bits", bits));

  const Json& offsets = j.at("data_offsets");
  std::optional<int64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = as_size(offsets[0]);
    end = as_size(offsets[1]);
  }
  if (!begin || !end || *begin > *end)
    throw Error(arg + " data_offsets", "two integers 0 <= begin <= end", brief(offsets));
  if (*end > data_bytes)
    throw Error(arg + " data_offsets",
                fmt::format("offsets inside the data section of {} bytes", data_bytes),
                brief(offsets));
  e.begin = *begin;
  e.end = *end;
  if (e.end - e.begin != bits / 8)
    throw Error(arg + " data_offsets",
                fmt::format("{} bytes ({} {} of shape {})", bits / 8, numel, e.info->name,
                            shape_string(e.shape)),
                fmt::format("{} bytes [{}, {})", e.end - e.begin, e.begin, e.end));
  return e;
}

// Two tensors sharing a byte would alias: one write (after a copy) would show
// in the other, and a writer could never have produced it.
void check_no_overlap(const std::map<std::string, Entry, std::less<>>& tensors,
                      const std::string& path) {
  std::vector<std::pair<const std::string*, const Entry*>> by_offset;
  for (const auto& [name, e] : tensors)
    if (e.end > e.begin) by_offset.emplace_back(&name, &e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto& [prev_name, prev] = by_offset[i - 1];
    const auto& [name, e] = by_offset[i];
    if (e->begin < prev->end)
      throw Error(tensor_arg(path, *name), "bytes no other tensor uses",
                  fmt::format("[{}, {}), overlapping tensor {} at [{}, {})", e->begin, e->end,
                              json_quoted(*prev_name), prev->begin, prev->end));
  }
}

// Where zero-size tensors point: aligned for every dtype, never read.
alignas(64) constexpr std::byte kNoElements[64] = {};

}  // namespace

struct SafetensorsFile::State {
  std::string path;
  // The file's bytes: mapped (open), or a 64-byte-aligned copy (from bytes).
  std::optional<Mapping> mapping;
  std::unique_ptr<std::byte, detail::AlignedFree> owned;
  const std::byte* base = nullptr;
  uint64_t size = 0;

  std::map<std::string, Entry, std::less<>> tensors;
  std::map<std::string, std::string> metadata;
  // Tensors the file leaves misaligned for their dtype (a writer that does not
  // pad the header): copied once, so views never load a misaligned element.
  std::vector<std::unique_ptr<std::byte, detail::AlignedFree>> aligned_copies;

  // Checks the header against the bytes [base, base + size) and points every
  // entry at its data.
  void parse();
};

SafetensorsFile::SafetensorsFile(std::shared_ptr<const State> state) : state_(std::move(state)) {}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto s = std::make_shared<State>();
  s->path = path;
  s->mapping.emplace(path);
  s->base = s->mapping->data();
  s->size = s->mapping->size();
  s->parse();
  return SafetensorsFile(std::move(s));
}

SafetensorsFile detail::safetensors_from_bytes(std::string_view bytes, std::string name) {
  auto s = std::make_shared<SafetensorsFile::State>();
  s->path = std::move(name);
  if (!bytes.empty()) {
    s->owned = detail::aligned_uninitialized(static_cast<int64_t>(bytes.size()));
    std::memcpy(s->owned.get(), bytes.data(), bytes.size());
  }
  s->base = s->owned.get();
  s->size = bytes.size();
  s->parse();
  return SafetensorsFile(std::move(s));
}

void SafetensorsFile::State::parse() {
  // The 8-byte length comes first; a shorter file has no header.
  if (size < 8)
    throw Error(file_arg(path), "a safetensors file (at least the 8-byte header length)",
                fmt::format("{} bytes", size));
  const uint64_t file_bytes = size;
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, base, 8);  // little-endian (static_assert above)
  if (header_bytes > kMaxHeaderBytes)
    throw Error(file_arg(path), fmt::format("a header length of at most {} bytes", kMaxHeaderBytes),
                fmt::format("{} bytes", header_bytes));
  if (header_bytes > file_bytes - 8)
    throw Error(file_arg(path),
                fmt::format("a header length within the file's {} bytes", file_bytes),
                fmt::format("{} bytes", header_bytes));
  const std::string_view text(reinterpret_cast<const char*>(base + 8), header_bytes);
  const Json header = parse_header(text, path);
  if (!header.is_object()) throw Error(file_arg(path), "a JSON object as header", brief(header));

  const std::byte* data = base + 8 + header_bytes;
  const auto data_bytes = static_cast<int64_t>(file_bytes - 8 - header_bytes);
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey)
      metadata = read_metadata(value, path);
    else
      tensors.emplace(name, read_entry(name, value, data_bytes, path));
  }
  check_no_overlap(tensors, path);

  for (auto& [name, e] : tensors) {
    if (e.begin == e.end) {
      e.data = kNoElements;
      continue;
    }
    const std::byte* bytes = data + e.begin;
    const auto size = static_cast<std::size_t>(e.end - e.begin);
    // A bool holding 2 is undefined behaviour in C++; reject it here.
    if (e.info->dtype == DType::Bool) {
      const auto* bad = std::find_if(bytes, bytes + size,
                                     [](std::byte b) { return std::to_integer<int>(b) > 1; });
      if (bad != bytes + size)
        throw Error(tensor_arg(path, name), "BOOL bytes 0 or 1",
                    fmt::format("{} at element {}", std::to_integer<int>(*bad), bad - bytes));
    }
    const auto element_bytes = static_cast<uintptr_t>(e.info->bits / 8);
    if (e.info->dtype && reinterpret_cast<uintptr_t>(bytes) % element_bytes != 0) {
      aligned_copies.push_back(detail::aligned_zeroed(static_cast<int64_t>(size)));
      std::memcpy(aligned_copies.back().get(), bytes, size);
      bytes = aligned_copies.back().get();
    }
    e.data = bytes;
  }
}

const SafetensorsFile::State& SafetensorsFile::state() const {
  if (!state_) throw Error("SafetensorsFile", "an open file", "a moved-from object");
  return *state_;
}

const std::string& SafetensorsFile::path() const& { return state().path; }

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : state().tensors) out.push_back(name);
  return out;
}

bool SafetensorsFile::contains(std::string_view name) const {
  return state().tensors.find(name) != state().tensors.end();
}

AnyView SafetensorsFile::view(std::string_view name) const& {
  const State& s = state();
  const auto it = s.tensors.find(name);
  if (it == s.tensors.end())
    throw Error(tensor_arg(s.path, name),
                fmt::format("one of the file's {} tensors", s.tensors.size()), "no such tensor");
  const Entry& e = it->second;
  if (!e.info->dtype)
    throw Error(
        tensor_arg(s.path, name), fmt::format("dtype {}", kSupportedNames),
        fmt::format("dtype {}, which is not supported (convert it before saving)", e.info->name));
  return AnyView(e.data, *e.info->dtype, e.shape, AnyView::contiguous_strides(e.shape));
}

std::map<std::string, AnyView> SafetensorsFile::views() const& {
  std::map<std::string, AnyView> out;
  for (const auto& [name, e] : state().tensors) out.emplace(name, view(name));
  return out;
}

const std::map<std::string, std::string>& SafetensorsFile::metadata() const& {
  return state().metadata;
}

// ---- writing ----------------------------------------------------------------

namespace {

struct Item {
  const std::string* name;
  const AnyView* view;
  const DtypeInfo* info;
  int64_t bytes;
  int64_t begin = 0;
};

// JSON strings must be UTF-8; say which one is not before writing anything.
void check_utf8(const std::string& s, const std::string& arg, std::string_view what) {
  try {
    (void)Json(s).dump();
  } catch (const Json::type_error&) {
    throw Error(arg, fmt::format("a {} in UTF-8", what), printable(s));
  }
}

Item check_tensor(const std::string& path, const std::string& name, const AnyView& v) {
  const std::string arg = tensor_arg(path, name);
  check_utf8(name, arg, "name");
  if (name == kMetadataKey)
    throw Error(arg, "a tensor name other than __metadata__ (the header's metadata key)", name);
  if (v.strides.size() != v.shape.size())
    throw Error(arg, fmt::format("{} strides (one per dimension)", v.shape.size()),
                shape_string(v.strides));
  if (std::any_of(v.strides.begin(), v.strides.end(), [](int64_t s) { return s < 0; }))
    throw Error(arg, "non-negative strides", shape_string(v.strides));
  const int64_t numel = checked_numel(v.shape, arg);
  if (numel > 0 && v.empty()) throw Error(arg, "a view of data", "nothing (data == nullptr)");
  const DtypeInfo& info = kDtypes[dtype_rank(v.dtype)];
  return Item{&name, &v, &info, checked_mul(numel, info.bits / 8, arg)};
}

bool contiguous(const AnyView& v) {
  int64_t s = 1;
  for (std::size_t d = v.shape.size(); d-- > 0;) {
    if (v.shape[d] > 1 && v.strides[d] != s) return false;
    s *= v.shape[d];
  }
  return true;
}

// `path` + a unique suffix, created empty (O_EXCL); unlinked on destruction
// unless committed, so a failure leaves only what was there before.
class TempFile {
 public:
  explicit TempFile(const std::string& path) : path_(path) {
    static std::atomic<uint64_t> counter{0};
    for (int attempt = 0; fd_ < 0; ++attempt) {
      temp_ = fmt::format("{}.{}.{}.tmp", path, ::getpid(), counter++);
      // 0666 & ~umask: the permissions any new file gets.
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && (errno != EEXIST || attempt == 100)) fail("create", errno);
    }
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const std::byte* p, std::size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("write", w < 0 ? errno : ENOSPC);
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

  // Data on disk before the name points to it: a crash leaves the old file or
  // the new one, never a truncated one.
  void commit() {
    if (::fsync(fd_) != 0) fail("fsync", errno);
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) fail("close", errno);
    if (::rename(temp_.c_str(), path_.c_str()) != 0) fail("rename", errno);
    committed_ = true;
  }

 private:
  [[noreturn]] void fail(std::string_view step, int err) const {
    throw Error(file_arg(path_), "a file that can be written",
                fmt::format("{} of {} failed: {}", step, temp_, errno_text(err)));
  }

  std::string path_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Gathers strided elements into 1 MiB writes; contiguous runs that large go
// straight from the caller's memory.
class BufferedWriter {
 public:
  explicit BufferedWriter(TempFile& file) : file_(file) { buffer_.reserve(kBytes); }
  void append(const std::byte* p, std::size_t n) {
    if (buffer_.size() + n > kBytes) flush();
    if (n >= kBytes)
      file_.write(p, n);
    else
      buffer_.insert(buffer_.end(), p, p + n);
  }
  void flush() {
    file_.write(buffer_.data(), buffer_.size());
    buffer_.clear();
  }

 private:
  static constexpr std::size_t kBytes = std::size_t{1} << 20;
  TempFile& file_;
  std::vector<std::byte> buffer_;
};

// v's elements in row-major order, each `element_bytes` long.
void append_view(BufferedWriter& out, const AnyView& v, int64_t element_bytes) {
  const auto* base = static_cast<const std::byte*>(v.data);
  const auto esize = static_cast<std::size_t>(element_bytes);
  const int64_t numel = v.numel();
  if (numel == 0) return;
  if (contiguous(v)) {
    out.append(base, static_cast<std::size_t>(numel) * esize);
    return;
  }
  const std::size_t rank = v.shape.size();  // >= 1: a rank-0 view is contiguous
  const int64_t row = v.shape[rank - 1], row_stride = v.strides[rank - 1];
  std::vector<int64_t> index(rank - 1, 0);  // of the row, over the leading dims
  for (;;) {
    int64_t offset = 0;
    for (std::size_t d = 0; d + 1 < rank; ++d) offset += index[d] * v.strides[d];
    const std::byte* p = base + offset * element_bytes;
    if (row_stride == 1 || row == 1) {
      out.append(p, static_cast<std::size_t>(row) * esize);
    } else {
      for (int64_t j = 0; j < row; ++j) out.append(p + j * row_stride * element_bytes, esize);
    }
    std::size_t d = rank - 1;
    while (d > 0 && ++index[d - 1] == v.shape[d - 1]) index[--d] = 0;
    if (d == 0) return;
  }
}

}  // namespace

void save_safetensors(const std::string& path, const std::map<std::string, AnyView>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<Item> items;
  for (const auto& [name, view] : tensors) items.push_back(check_tensor(path, name, view));
  for (const auto& [key, value] : metadata) {
    const std::string arg = fmt::format("{} metadata[{}]", file_arg(path), json_quoted(key));
    check_utf8(key, arg, "key");
    check_utf8(value, arg, "value");
  }

  // The reference's order: larger dtypes first (alignment), then by name.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return dtype_rank(*a.info->dtype) > dtype_rank(*b.info->dtype);
  });
  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  int64_t offset = 0;
  for (Item& item : items) {
    item.begin = offset;
    if (__builtin_add_overflow(offset, item.bytes, &offset))
      throw Error(tensor_arg(path, *item.name), "tensors whose total size fits in int64",
                  fmt::format("{} more bytes after {}", item.bytes, item.begin));
    OrderedJson entry = OrderedJson::object();
    entry["dtype"] = item.info->name;
    entry["shape"] = item.view->shape;
    entry["data_offsets"] = OrderedJson::array({item.begin, offset});
    header[*item.name] = std::move(entry);
  }
  std::string text = header.dump();
  // Spaces up to a multiple of 8: the data section then starts 8-aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  TempFile file(path);
  BufferedWriter out(file);
  std::array<std::byte, 8> length{};
  const uint64_t n = text.size();
  std::memcpy(length.data(), &n, 8);  // little-endian (static_assert above)
  out.append(length.data(), length.size());
  out.append(reinterpret_cast<const std::byte*>(text.data()), text.size());
  for (const Item& item : items) append_view(out, *item.view, item.info->bits / 8);
  out.flush();
  file.commit();
}

}  // namespace maskattn
