// Helpers shared by the bindings: argument decoding and type-tagged handles.
//
// Errors: the addon is built with NODE_ADDON_API_CPP_EXCEPTIONS_ALL, so anything below may simply throw a
// std::exception; node-addon-api turns it into a JS Error carrying what(). Bindings throw Napi::Error
// themselves only when the JS error needs extra properties.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace kiln {

// Raw bytes behind an ArrayBuffer or any ArrayBufferView (typed arrays, Buffer, DataView).
struct Bytes {
  uint8_t* data = nullptr;
  size_t size = 0;
};

inline Bytes BytesOf(const Napi::Value& v, const char* what) {
  if (v.IsArrayBuffer()) {
    auto ab = v.As<Napi::ArrayBuffer>();
    return {static_cast<uint8_t*>(ab.Data()), ab.ByteLength()};
  }
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data());
    return {base + ta.ByteOffset(), ta.ByteLength()};
  }
  if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    return {static_cast<uint8_t*>(dv.Data()), dv.ByteLength()};
  }
  throw std::invalid_argument(std::string(what) + " must be an ArrayBuffer or a typed array");
}

// A byte count or offset given as a number (a non-negative integer below 2^53) or a bigint.
inline uint64_t SizeOf(const Napi::Value& v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t n = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw std::invalid_argument(std::string(what) + " does not fit in 64 bits");
    return n;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9007199254740992.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
      throw std::invalid_argument(std::string(what) + " must be a non-negative integer, got " +
                                  v.ToString().Utf8Value());
    return static_cast<uint64_t>(d);
  }
  throw std::invalid_argument(std::string(what) + " must be a number or a bigint");
}

inline std::string StringOf(const Napi::Value& v, const char* what) {
  if (!v.IsString()) throw std::invalid_argument(std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// Handles are Externals tagged with their C++ type, so passing, say, a CUDA module where a CPU library is
// expected is a TypeError rather than a pointer reinterpreted as the wrong struct. Each handle type
// declares `static constexpr napi_type_tag kTag` (two random 64-bit words).
template <typename T>
Napi::External<T> WrapHandle(Napi::Env env, T* p) {
  auto ext = Napi::External<T>::New(env, p, [](Napi::Env, T* q) { delete q; });
  ext.TypeTag(&T::kTag);
  return ext;
}

template <typename T>
T* UnwrapHandle(const Napi::Value& v, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<T>>().CheckTypeTag(&T::kTag))
    throw Napi::TypeError::New(v.Env(), std::string(what) + " is not a " + T::kKind + " handle");
  return v.As<Napi::External<T>>().Data();
}

// Registration hooks, one per source file, called from addon.cc.
void InitArena(Napi::Env env, Napi::Object exports);
void InitCpu(Napi::Env env, Napi::Object exports);
void InitCuda(Napi::Env env, Napi::Object exports);
void InitCollective(Napi::Env env, Napi::Object exports);
void InitNccl(Napi::Env env, Napi::Object exports);

}  // namespace kiln
