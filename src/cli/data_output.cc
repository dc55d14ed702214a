#include "cli/data_output.h"

#include "cli/atomic_file.h"
#include "cli/preview.h"

namespace quiver {

arrow::Result<std::optional<FileFormat>> ResolveOutputFormat(const OutputFlags& flags) {
  if (flags.path.empty()) {
    if (!flags.format_name.empty()) {
      return arrow::Status::Invalid("--format applies to the file of -o FILE");
    }
    return std::nullopt;
  }
  if (!flags.format_name.empty()) return ParseFormatName(flags.format_name);
  return FormatFromExtension(flags.path);
}

arrow::Result<std::shared_ptr<arrow::Table>> Deliver(arrow::RecordBatchReader* reader,
                                                     const OutputFlags& flags,
                                                     std::optional<FileFormat> format,
                                                     arrow::Status* read_error) {
  if (flags.path.empty()) {
    auto head = ReadHead(reader);
    if (!head.ok()) *read_error = head.status();
    return head;
  }
  ARROW_ASSIGN_OR_RAISE(auto file, AtomicFile::Create(flags.path));
  // A writer's error names neither the file nor the format; the message gets both.
  auto named = [&](const arrow::Status& st) {
    return st.WithMessage("cannot write '", flags.path, "' as ", FormatName(*format), ": ",
                          st.message());
  };
  auto writer = MakeBatchFileWriter(*format, reader->schema(), file->stream());
  if (!writer.ok()) return named(writer.status());
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    *read_error = reader->ReadNext(&batch);
    ARROW_RETURN_NOT_OK(*read_error);
    if (!batch) break;
    auto st = (*writer)->Write(*batch);
    if (!st.ok()) return named(st);
  }
  auto st = (*writer)->Close();
  if (!st.ok()) return named(st);
  ARROW_RETURN_NOT_OK(file->Commit());
  return nullptr;
}

nlohmann::json SchemaJson(const arrow::Schema& schema) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& field : schema.fields()) {
    out.push_back({{"name", field->name()}, {"type", field->type()->ToString()}});
  }
  return out;
}

}  // namespace quiver
