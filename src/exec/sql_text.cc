#include "exec/sql_text.h"

#include <cctype>
#include <vector>

namespace quiver {

const char* DialectName(SqlDialect dialect) {
  switch (dialect) {
    case SqlDialect::kSqlite:
      return "sqlite";
    case SqlDialect::kPostgresql:
      return "postgresql";
    default:
      return "generic";
  }
}

namespace {

bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$';
}

// Walks SQL text, reporting literal spans and code spans separately. `on_code` receives
// code text (comments already replaced by a single space), `on_literal` the literal
// verbatim (quotes included).
template <typename CodeFn, typename LiteralFn>
void Lex(std::string_view s, SqlDialect dialect, CodeFn on_code, LiteralFn on_literal) {
  size_t i = 0, n = s.size();
  while (i < n) {
    char c = s[i];
    // Line comment.
    if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      while (i < n && s[i] != '\n') ++i;
      on_code(std::string_view(" "));
      continue;
    }
    // Block comment (PostgreSQL nests them).
    if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      int depth = 0;
      while (i < n) {
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
          i += 2;
          if (--depth == 0 || dialect != SqlDialect::kPostgresql) break;
        } else {
          ++i;
        }
      }
      on_code(std::string_view(" "));
      continue;
    }
    // Quoted string or identifier, with doubled-quote escapes; E'..' allows backslashes.
    if (c == '\'' || c == '"' || c == '`') {
      bool backslash = dialect == SqlDialect::kPostgresql && c == '\'' && i > 0 &&
                       (s[i - 1] == 'E' || s[i - 1] == 'e') &&
                       (i < 2 || !IsIdentChar(s[i - 2]));
      size_t start = i++;
      while (i < n) {
        if (backslash && s[i] == '\\' && i + 1 < n) {
          i += 2;
        } else if (s[i] == c) {
          if (i + 1 < n && s[i + 1] == c) {
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          ++i;
        }
      }
      on_literal(s.substr(start, i - start));
      continue;
    }
    // PostgreSQL dollar quoting: $tag$ ... $tag$.
    if (c == '$' && dialect == SqlDialect::kPostgresql && (i == 0 || !IsIdentChar(s[i - 1]))) {
      size_t j = i + 1;
      while (j < n && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      if (j < n && s[j] == '$' && !(j > i + 1 && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
        std::string_view tag = s.substr(i, j - i + 1);
        size_t end = s.find(tag, j + 1);
        size_t stop = end == std::string_view::npos ? n : end + tag.size();
        on_literal(s.substr(i, stop - i));
        i = stop;
        continue;
      }
    }
    size_t start = i;
    while (i < n) {
      char d = s[i];
      if (d == '\'' || d == '"' || d == '`' || (d == '-' && i + 1 < n && s[i + 1] == '-') ||
          (d == '/' && i + 1 < n && s[i + 1] == '*') ||
          (d == '$' && dialect == SqlDialect::kPostgresql && (i == 0 || !IsIdentChar(s[i - 1])))) {
        break;
      }
      ++i;
    }
    if (i == start) ++i;  // a lone '$' that did not start a dollar quote
    on_code(s.substr(start, i - start));
  }
}

}  // namespace

std::string NormalizeSql(std::string_view sql, SqlDialect dialect) {
  std::string out;
  out.reserve(sql.size());
  bool pending_space = false;
  auto emit_code = [&](std::string_view code) {
    for (char c : code) {
      if (std::isspace(static_cast<unsigned char>(c))) {
        pending_space = true;
      } else {
        if (pending_space && !out.empty()) out += ' ';
        pending_space = false;
        out += c;
      }
    }
  };
  auto emit_literal = [&](std::string_view lit) {
    if (pending_space && !out.empty()) out += ' ';
    pending_space = false;
    out.append(lit);
  };
  Lex(sql, dialect, emit_code, emit_literal);
  while (!out.empty() && (out.back() == ';' || out.back() == ' ')) out.pop_back();
  return out;
}

std::optional<std::string> FindNondeterministic(std::string_view sql, SqlDialect dialect) {
  // Lower-cased code with literals blanked out.
  std::string code;
  Lex(
      sql, dialect,
      [&](std::string_view c) {
        for (char ch : c) code += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      },
      [&](std::string_view lit) {
        // Keep 'now'-style literals visible to the SQLite date functions check below.
        std::string lower;
        for (char ch : lit) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        code += (lower == "'now'") ? " 'now' " : " '' ";
      });

  // Functions: name followed by '('. Keywords: bare words.
  std::vector<const char*> functions = {"random", "uuid", "rand"};
  std::vector<const char*> keywords = {"current_timestamp", "current_date", "current_time",
                                       "localtimestamp", "localtime"};
  if (dialect == SqlDialect::kSqlite) {
    functions.insert(functions.end(), {"randomblob", "changes", "last_insert_rowid",
                                       "total_changes"});
  } else {
    functions.insert(functions.end(),
                     {"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp",
                      "timeofday", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v4",
                      "nextval", "currval", "lastval", "setseed", "txid_current",
                      "pg_backend_pid", "inet_client_addr"});
  }
  auto word_at = [&](size_t pos, size_t len) {
    bool left = pos == 0 || !IsIdentChar(code[pos - 1]);
    bool right = pos + len >= code.size() || !IsIdentChar(code[pos + len]);
    return left && right;
  };
  for (const char* f : functions) {
    std::string name(f);
    for (size_t pos = code.find(name); pos != std::string::npos; pos = code.find(name, pos + 1)) {
      if (!word_at(pos, name.size())) continue;
      size_t after = pos + name.size();
      while (after < code.size() && code[after] == ' ') ++after;
      if (after < code.size() && code[after] == '(') return name + "()";
    }
  }
  for (const char* k : keywords) {
    std::string name(k);
    for (size_t pos = code.find(name); pos != std::string::npos; pos = code.find(name, pos + 1)) {
      if (word_at(pos, name.size())) return name;
    }
  }
  // SQLite date and time functions read the clock when given 'now'.
  if (dialect == SqlDialect::kSqlite && code.find("'now'") != std::string::npos) {
    return "'now'";
  }
  return std::nullopt;
}

}  // namespace quiver
