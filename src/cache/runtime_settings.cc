#include "cache/runtime_settings.h"

#include <nlohmann/json.hpp>

namespace quiver {

arrow::Status RuntimeSettings::Validate() const {
  if (half_life && !(*half_life > 0)) {
    return arrow::Status::Invalid("half_life must be > 0, got ", *half_life);
  }
  if (cache_size && *cache_size <= 0) {
    return arrow::Status::Invalid("cache_size must be > 0, got ", *cache_size);
  }
  if (memory_size && *memory_size < 0) {
    return arrow::Status::Invalid("memory_size must be >= 0, got ", *memory_size);
  }
  return arrow::Status::OK();
}

std::map<std::string, std::string> RuntimeSettings::ToMap() const {
  std::map<std::string, std::string> out;
  if (half_life) out["half_life"] = nlohmann::json(*half_life).dump();
  if (cache_size) out["cache_size"] = nlohmann::json(*cache_size).dump();
  if (memory_size) out["memory_size"] = nlohmann::json(*memory_size).dump();
  return out;
}

arrow::Result<RuntimeSettings> RuntimeSettings::FromMap(
    const std::map<std::string, std::string>& map) {
  RuntimeSettings out;
  try {
    for (const auto& [name, text] : map) {
      auto value = nlohmann::json::parse(text);
      if (name == "half_life") out.half_life = value.get<double>();
      if (name == "cache_size") out.cache_size = value.get<int64_t>();
      if (name == "memory_size") out.memory_size = value.get<int64_t>();
    }
  } catch (const nlohmann::json::exception& e) {
    return arrow::Status::Invalid("stored settings: ", e.what());
  }
  ARROW_RETURN_NOT_OK(out.Validate());
  return out;
}

}  // namespace quiver
