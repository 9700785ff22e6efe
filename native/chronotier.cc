// chronotier's native addon: the few things JavaScript cannot do - map a file and hand JS an
// ArrayBuffer over it, write cache lines back (libpmem), msync, and take an advisory lock.
// No logic lives here; src/native.ts is the only module that loads it.
//
// Built twice from this one source (binding.gyp): with CHRONOTIER_WITH_LIBPMEM when libpmem is
// installed, and always without it (mmap + msync), so both paths are built and tested.

#include <napi.h>
#include <uv.h>
#include <v8.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifdef CHRONOTIER_WITH_LIBPMEM
#include <libpmem.h>
#define CHRONOTIER_VARIANT "libpmem"
#else
#define CHRONOTIER_VARIANT "msync"
#endif

namespace {

// One per mapping. The external ArrayBuffer's finalizer owns it; an explicit unmap marks it so
// the finalizer does not unmap twice. The registry lets unmap() find the mapping of a buffer
// and guards against a late finalizer unmapping an address that a newer mapping reuses.
struct Mapping {
  void* address;
  size_t length;
  bool unmapped;
};

std::mutex registry_mutex;
std::unordered_map<void*, Mapping*> registry;

void ThrowErrno(Napi::Env env, int error, const char* syscall, const std::string& path) {
  const char* code = uv_err_name(-error);
  Napi::Error failure = Napi::Error::New(env, std::string(code) + ": " + syscall + " failed on " + path + ": " + std::strerror(error));
  failure.Set("code", code);
  failure.Set("syscall", syscall);
  failure.Set("path", path);
  failure.Set("errno", Napi::Number::New(env, -error));
  failure.ThrowAsJavaScriptException();
}

void ThrowRange(Napi::Env env, const char* message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
}

// Marks the mapping at `address` unmapped and unmaps it, unless that already happened.
void ReleaseMapping(void* address, Mapping* only) {
  Mapping* mapping = nullptr;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto found = registry.find(address);
    if (found == registry.end() || (only != nullptr && found->second != only) || found->second->unmapped) return;
    mapping = found->second;
    mapping->unmapped = true;
    registry.erase(found);
  }
  munmap(mapping->address, mapping->length);
}

void FinalizeMapping(napi_env, void* data, void*) {
  Mapping* mapping = static_cast<Mapping*>(data);
  ReleaseMapping(mapping->address, mapping);
  delete mapping;
}

// An ArrayBuffer over the mapping that V8 does not count as external memory: a mapped file is
// not heap memory that a collection could free, and counting it made V8 answer every large
// mapping with a full collection (~10 ms at open with a 160 MiB queue). The memory is managed
// by hand - the empty deleter - and released by unmap(), which detaches the buffer first, or
// by the finalizer of the buffer object once no view can reach it.
napi_value UncountedArrayBuffer(Napi::Env env, Mapping* mapping) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(mapping->address, mapping->length, v8::BackingStore::EmptyDeleter, nullptr);
  v8::Local<v8::ArrayBuffer> buffer = v8::ArrayBuffer::New(isolate, std::move(store));
  // napi_value is a v8::Local's slot in Node's implementation (v8impl::JsValueFromV8LocalValue).
  napi_value value = reinterpret_cast<napi_value>(*buffer);
  if (napi_add_finalizer(env, value, mapping, FinalizeMapping, nullptr, nullptr) != napi_ok) {
    ReleaseMapping(mapping->address, mapping);
    delete mapping;
    Napi::Error::New(env, "napi_add_finalizer failed").ThrowAsJavaScriptException();
    return nullptr;
  }
  return value;
}

// Where to map `length` bytes: 2 MiB aligned when the mapping spans a huge page, as
// pmem_map_file does, so a DAX file can be mapped with huge pages. Small regions take the
// kernel's choice: an aligned hint costs two system calls and a page-table page of its own.
void* MapHint(size_t length) {
  const size_t huge = size_t{2} << 20;
  if (length < huge) return nullptr;
  void* probe = mmap(nullptr, length + huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe == MAP_FAILED) return nullptr;
  munmap(probe, length + huge);
  return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(probe) + huge - 1) & ~(huge - 1));
}

#ifdef CHRONOTIER_WITH_LIBPMEM
// Devices whose file system refused MAP_SYNC (anything but DAX): later mappings there skip the
// attempt, which would cost every file opened one failing system call.
std::mutex no_map_sync_mutex;
std::unordered_set<dev_t> no_map_sync;

bool MapSyncRefused(dev_t device) {
  std::lock_guard<std::mutex> lock(no_map_sync_mutex);
  return no_map_sync.count(device) != 0;
}

void RememberMapSyncRefused(dev_t device) {
  std::lock_guard<std::mutex> lock(no_map_sync_mutex);
  no_map_sync.insert(device);
}
#endif

// Maps `length` bytes of the open file `fd` shared, read-write; nullptr after throwing. With
// libpmem, this is what pmem_map_file does, minus its extra checks (access, a second open, fcntl,
// two fstats): ~11 system calls became 3-5, which is a third of open's time on a VM. MAP_SYNC (a
// DAX file system) means stores reach the persistence domain once flushed; otherwise
// pmem_is_pmem decides (PMEM_IS_PMEM_FORCE on tmpfs).
void* MapDescriptor(Napi::Env env, int fd, const struct stat& st, size_t length, const std::string& path, bool* is_pmem) {
  void* hint = MapHint(length);
#ifdef CHRONOTIER_WITH_LIBPMEM
  void* address = MAP_FAILED;
  bool synchronous = false;
  if (!MapSyncRefused(st.st_dev)) {
    address = mmap(hint, length, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
    synchronous = address != MAP_FAILED;
    if (!synchronous && errno != EOPNOTSUPP && errno != EINVAL) {
      ThrowErrno(env, errno, "mmap", path);
      return nullptr;
    }
    if (!synchronous) RememberMapSyncRefused(st.st_dev);
  }
  if (!synchronous) address = mmap(hint, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
#else
  (void)st;
  void* address = mmap(hint, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
#endif
  if (address == MAP_FAILED) {
    ThrowErrno(env, errno, "mmap", path);
    return nullptr;
  }
#ifdef CHRONOTIER_WITH_LIBPMEM
  *is_pmem = synchronous || pmem_is_pmem(address, length) != 0;
#else
  *is_pmem = false;
#endif
  return address;
}

// Opens `path` read-write (created when `create`) and fstats it; -1 after throwing.
int OpenFile(Napi::Env env, const std::string& path, bool create, struct stat* st) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0) {
    ThrowErrno(env, errno, "open", path);
    return -1;
  }
  if (fstat(fd, st) != 0) {
    int error = errno;
    close(fd);
    ThrowErrno(env, error, "fstat", path);
    return -1;
  }
  return fd;
}

// The mapping as JS sees it: { buffer, isPmem, fsType }, registered so unmap() can find it.
// fsType is the file system's magic number from fstatfs on the open descriptor (left out if that
// fails), so that JS tells tmpfs from PMem without a statfs of its own at the first persist.
Napi::Object MappingObject(Napi::Env env, int fd, void* address, size_t length, bool is_pmem) {
  Mapping* mapping = new Mapping{address, length, false};
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry[address] = mapping;
  }
  Napi::Object result = Napi::Object::New(env);
  napi_value buffer = UncountedArrayBuffer(env, mapping);
  if (buffer == nullptr) return result;
  result.Set("buffer", Napi::Value(env, buffer));
  result.Set("isPmem", Napi::Boolean::New(env, is_pmem));
  struct statfs fs;
  if (fstatfs(fd, &fs) == 0) result.Set("fsType", Napi::Number::New(env, static_cast<double>(fs.f_type)));
  return result;
}

// map(path, size, create) -> { buffer: ArrayBuffer, isPmem: boolean, fsType?: number }. An existing file larger
// than `size` is mapped whole (never shrunk); a smaller one is extended when `create`.
Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBoolean()) {
    Napi::TypeError::New(env, "map(path: string, size: number, create: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>();
  double requested = info[1].As<Napi::Number>().DoubleValue();
  if (requested < 0 || requested > 9007199254740991.0) {
    ThrowRange(env, "size out of range");
    return env.Undefined();
  }
  bool create = info[2].As<Napi::Boolean>();
  struct stat st;
  int fd = OpenFile(env, path, create, &st);
  if (fd < 0) return env.Undefined();
  size_t size = static_cast<size_t>(requested);
  size_t length = create && static_cast<size_t>(st.st_size) < size ? size : st.st_size;
  if (length != static_cast<size_t>(st.st_size) && ftruncate(fd, length) != 0) {
    int error = errno;
    close(fd);
    ThrowErrno(env, error, "ftruncate", path);
    return env.Undefined();
  }
  if (length == 0) {
    close(fd);
    ThrowErrno(env, EINVAL, "mmap", path);
    return env.Undefined();
  }
  bool is_pmem = false;
  void* address = MapDescriptor(env, fd, st, length, path, &is_pmem);
  if (address == nullptr) {
    close(fd);
    return env.Undefined();
  }
  Napi::Object result = MappingObject(env, fd, address, length, is_pmem);
  close(fd);
  return result;
}

// openMapped(path, headBytes) -> { buffer?: ArrayBuffer, isPmem, fsType?, size, head: ArrayBuffer }: an
// existing file mapped whole (an empty one is not mapped), plus a read(2) copy of its first
// headBytes bytes, so that open verifies the header and reads its state without faulting in a
// page of the mapping (10-25 µs per first touch on the VMs measured, against ~5 µs for a read).
// One call instead of the four of JS's open, fstat, read and close before map's own.
Napi::Value OpenMapped(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "openMapped(path: string, headBytes: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>();
  double wanted = info[1].As<Napi::Number>().DoubleValue();
  if (!(wanted >= 0 && wanted <= 1048576.0)) {
    ThrowRange(env, "headBytes out of range");
    return env.Undefined();
  }
  struct stat st;
  int fd = OpenFile(env, path, false, &st);
  if (fd < 0) return env.Undefined();
  size_t size = static_cast<size_t>(st.st_size);
  size_t head_bytes = std::min(static_cast<size_t>(wanted), size);
  Napi::ArrayBuffer head = Napi::ArrayBuffer::New(env, head_bytes);
  for (size_t done = 0; done < head_bytes;) {
    ssize_t read = pread(fd, static_cast<char*>(head.Data()) + done, head_bytes - done, done);
    if (read <= 0) {
      int error = read == 0 ? EIO : errno;
      if (read < 0 && error == EINTR) continue;
      close(fd);
      ThrowErrno(env, error, "read", path);
      return env.Undefined();
    }
    done += static_cast<size_t>(read);
  }
  Napi::Object result = Napi::Object::New(env);
  if (size > 0) {
    bool is_pmem = false;
    void* address = MapDescriptor(env, fd, st, size, path, &is_pmem);
    if (address == nullptr) {
      close(fd);
      return env.Undefined();
    }
    result = MappingObject(env, fd, address, size, is_pmem);
  }
  close(fd);
  if (env.IsExceptionPending()) return env.Undefined();
  result.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  result.Set("head", head);
  return result;
}

// unmap(buffer): detaches the buffer (so stale views fail loudly) and unmaps it.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    Napi::TypeError::New(env, "unmap(buffer: ArrayBuffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  void* address = buffer.Data();
  buffer.Detach();
  ReleaseMapping(address, nullptr);
  return env.Undefined();
}

// Resolves (buffer, offset, length) to an address range inside the buffer, or throws.
bool RangeOf(const Napi::CallbackInfo& info, char** address, size_t* length) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArrayBuffer() || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "expected (buffer: ArrayBuffer, offset: number, length: number)").ThrowAsJavaScriptException();
    return false;
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  double offset = info[1].As<Napi::Number>().DoubleValue();
  double size = info[2].As<Napi::Number>().DoubleValue();
  if (!(offset >= 0) || !(size >= 0) || offset + size > static_cast<double>(buffer.ByteLength()) || buffer.Data() == nullptr) {
    ThrowRange(env, "range is outside the mapping");
    return false;
  }
  *address = static_cast<char*>(buffer.Data()) + static_cast<size_t>(offset);
  *length = static_cast<size_t>(size);
  return true;
}

bool MsyncRange(Napi::Env env, char* address, size_t length) {
  if (length == 0) return true;
  uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t start = reinterpret_cast<uintptr_t>(address) & ~(page - 1);
  if (msync(reinterpret_cast<void*>(start), reinterpret_cast<uintptr_t>(address) + length - start, MS_SYNC) != 0) {
    ThrowErrno(env, errno, "msync", "mapping");
    return false;
  }
  return true;
}

// persist(buffer, offset, length): CPU cache write-back + fence (libpmem), else msync.
Napi::Value Persist(const Napi::CallbackInfo& info) {
  char* address;
  size_t length;
  if (!RangeOf(info, &address, &length)) return info.Env().Undefined();
#ifdef CHRONOTIER_WITH_LIBPMEM
  pmem_persist(address, length);
#else
  MsyncRange(info.Env(), address, length);
#endif
  return info.Env().Undefined();
}

// flush(buffer, offset, length): starts the write-back; durable after drain() (msync: at once).
Napi::Value Flush(const Napi::CallbackInfo& info) {
  char* address;
  size_t length;
  if (!RangeOf(info, &address, &length)) return info.Env().Undefined();
#ifdef CHRONOTIER_WITH_LIBPMEM
  pmem_flush(address, length);
#else
  MsyncRange(info.Env(), address, length);
#endif
  return info.Env().Undefined();
}

Napi::Value Drain(const Napi::CallbackInfo& info) {
#ifdef CHRONOTIER_WITH_LIBPMEM
  pmem_drain();
#endif
  return info.Env().Undefined();
}

// msync(buffer, offset, length): for mappings that are not PMem.
Napi::Value Msync(const Napi::CallbackInfo& info) {
  char* address;
  size_t length;
  if (!RangeOf(info, &address, &length)) return info.Env().Undefined();
  MsyncRange(info.Env(), address, length);
  return info.Env().Undefined();
}

// lock(path) -> fd holding an exclusive flock; throws with code EWOULDBLOCK if held elsewhere.
Napi::Value Lock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "lock(path: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    ThrowErrno(env, errno, "open", path);
    return env.Undefined();
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    close(fd);
    ThrowErrno(env, error, "flock", path);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value Unlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "unlock(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  flock(fd, LOCK_UN);
  close(fd);
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("variant", Napi::String::New(env, CHRONOTIER_VARIANT));
  exports.Set("map", Napi::Function::New(env, Map));
  exports.Set("openMapped", Napi::Function::New(env, OpenMapped));
  exports.Set("unmap", Napi::Function::New(env, Unmap));
  exports.Set("persist", Napi::Function::New(env, Persist));
  exports.Set("flush", Napi::Function::New(env, Flush));
  exports.Set("drain", Napi::Function::New(env, Drain));
  exports.Set("msync", Napi::Function::New(env, Msync));
  exports.Set("lock", Napi::Function::New(env, Lock));
  exports.Set("unlock", Napi::Function::New(env, Unlock));
  return exports;
}

}  // namespace

NODE_API_MODULE(NODE_GYP_MODULE_NAME, Init)
