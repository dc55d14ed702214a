#include "exec/filter_expr.h"

#include <charconv>
#include <optional>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/api_scalar.h>
#include <arrow/compute/cast.h>
#include <arrow/util/string.h>

#include "format/compute_init.h"

namespace quiver {

namespace {

namespace cp = arrow::compute;

struct Token {
  enum Kind { kWord, kQuotedName, kString, kNumber, kOp, kLParen, kRParen, kComma, kEnd };
  Kind kind = kEnd;
  std::string text;  // the value (unquoted) or the operator
  size_t pos = 0;    // 1-based
};

std::string Describe(const Token& t) {
  switch (t.kind) {
    case Token::kEnd:
      return "the end of the filter";
    case Token::kString:
      return "'" + t.text + "'";
    case Token::kQuotedName:
      return "\"" + t.text + "\"";
    default:
      return "'" + t.text + "'";
  }
}

arrow::Status ErrorAt(const Token& t, const std::string& what) {
  return arrow::Status::Invalid("filter: ", what, " at position ", t.pos, " (", Describe(t),
                                ")");
}

bool IsWordStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

arrow::Result<std::vector<Token>> Tokenize(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    Token t;
    t.pos = i + 1;
    if (IsWordStart(c)) {
      size_t j = i;
      while (j < s.size() && IsWordChar(s[j])) ++j;
      t.kind = Token::kWord;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '\'' || c == '"') {
      // Quoted string or name; a doubled quote stands for itself.
      t.kind = c == '\'' ? Token::kString : Token::kQuotedName;
      size_t j = i + 1;
      bool closed = false;
      while (j < s.size()) {
        if (s[j] == c) {
          if (j + 1 < s.size() && s[j + 1] == c) {
            t.text.push_back(c);
            j += 2;
            continue;
          }
          closed = true;
          ++j;
          break;
        }
        t.text.push_back(s[j++]);
      }
      if (!closed) {
        return arrow::Status::Invalid("filter: unterminated ", c == '\'' ? "string" : "name",
                                      " starting at position ", t.pos);
      }
      i = j;
    } else if (IsDigit(c) || ((c == '-' || c == '.') && i + 1 < s.size() &&
                              (IsDigit(s[i + 1]) || s[i + 1] == '.'))) {
      auto exponent_sign = [&](size_t k) {
        return (s[k] == '+' || s[k] == '-') && (s[k - 1] == 'e' || s[k - 1] == 'E');
      };
      size_t j = i + 1;
      while (j < s.size() && (IsDigit(s[j]) || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
                              exponent_sign(j))) {
        ++j;
      }
      t.kind = Token::kNumber;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '(' || c == ')' || c == ',') {
      t.kind = c == '(' ? Token::kLParen : c == ')' ? Token::kRParen : Token::kComma;
      t.text = std::string(1, c);
      ++i;
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
      std::string op(1, c);
      if (i + 1 < s.size() && (s[i + 1] == '=' || (c == '<' && s[i + 1] == '>'))) {
        op.push_back(s[i + 1]);
      }
      if (op == "!") {
        return arrow::Status::Invalid("filter: '!' at position ", t.pos,
                                      " must be followed by '=' (use 'not' to negate)");
      }
      t.kind = Token::kOp;
      t.text = op;
      i += op.size();
    } else {
      return arrow::Status::Invalid("filter: unexpected character '", std::string(1, c),
                                    "' at position ", t.pos);
    }
    out.push_back(std::move(t));
  }
  Token end;
  end.pos = s.size() + 1;
  out.push_back(end);
  return out;
}

// `literal` as `type`, refusing lossy casts (Scalar::CastTo would truncate 2.5 to 2).
arrow::Result<std::shared_ptr<arrow::Scalar>> SafeCast(
    const std::shared_ptr<arrow::Scalar>& literal, const std::shared_ptr<arrow::DataType>& type) {
  ARROW_ASSIGN_OR_RAISE(auto cast, cp::Cast(arrow::Datum(literal), type, cp::CastOptions::Safe()));
  return cast.scalar();
}

// A column or a literal, before it is part of an expression.
struct Operand {
  Token token;
  std::shared_ptr<arrow::Field> field;     // a column
  std::shared_ptr<arrow::Scalar> literal;  // a literal (NullScalar for null)
  bool is_column() const { return field != nullptr; }
  bool is_null() const { return literal && !literal->is_valid; }
  cp::Expression ToExpression() const {
    return is_column() ? cp::field_ref(field->name()) : cp::literal(literal);
  }
  std::string Name() const {
    return is_column() ? "column '" + field->name() + "' (" + field->type()->ToString() + ")"
                       : Describe(token);
  }
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, const arrow::Schema& schema)
      : tokens_(std::move(tokens)), schema_(schema) {}

  arrow::Result<cp::Expression> Parse() {
    ARROW_ASSIGN_OR_RAISE(auto expr, ParseOr(0));
    if (Peek().kind != Token::kEnd) return ErrorAt(Peek(), "expected 'and', 'or' or the end");
    return expr;
  }

 private:
  const Token& Peek() const { return tokens_[pos_]; }
  Token Take() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
  bool IsKeyword(const Token& t, const char* word) const {
    return t.kind == Token::kWord && arrow::internal::AsciiToLower(t.text) == word;
  }
  bool TakeKeyword(const char* word) {
    if (!IsKeyword(Peek(), word)) return false;
    ++pos_;
    return true;
  }
  arrow::Status Deeper(int depth) const {
    if (depth > kMaxFilterDepth) {
      return ErrorAt(Peek(), "nested more than " + std::to_string(kMaxFilterDepth) + " levels");
    }
    return arrow::Status::OK();
  }

  arrow::Result<cp::Expression> ParseOr(int depth) {
    ARROW_ASSIGN_OR_RAISE(auto left, ParseAnd(depth));
    while (TakeKeyword("or")) {
      ARROW_ASSIGN_OR_RAISE(auto right, ParseAnd(depth));
      left = cp::or_(std::move(left), std::move(right));
    }
    return left;
  }

  arrow::Result<cp::Expression> ParseAnd(int depth) {
    ARROW_ASSIGN_OR_RAISE(auto left, ParseNot(depth));
    while (TakeKeyword("and")) {
      ARROW_ASSIGN_OR_RAISE(auto right, ParseNot(depth));
      left = cp::and_(std::move(left), std::move(right));
    }
    return left;
  }

  arrow::Result<cp::Expression> ParseNot(int depth) {
    if (TakeKeyword("not")) {
      ARROW_RETURN_NOT_OK(Deeper(depth + 1));
      ARROW_ASSIGN_OR_RAISE(auto operand, ParseNot(depth + 1));
      return cp::not_(std::move(operand));
    }
    return ParsePrimary(depth);
  }

  arrow::Result<cp::Expression> ParsePrimary(int depth) {
    if (Peek().kind == Token::kLParen) {
      Take();
      ARROW_RETURN_NOT_OK(Deeper(depth + 1));
      ARROW_ASSIGN_OR_RAISE(auto inner, ParseOr(depth + 1));
      if (Peek().kind != Token::kRParen) return ErrorAt(Peek(), "expected ')'");
      Take();
      return inner;
    }
    ARROW_ASSIGN_OR_RAISE(auto left, ParseOperand());
    const Token& next = Peek();
    if (next.kind == Token::kOp) {
      Token op = Take();
      ARROW_ASSIGN_OR_RAISE(auto right, ParseOperand());
      return Compare(op, std::move(left), std::move(right));
    }
    if (TakeKeyword("is")) {
      const bool negated = TakeKeyword("not");
      if (!TakeKeyword("null")) return ErrorAt(Peek(), "expected 'null' after 'is'");
      auto e = left.ToExpression();
      return negated ? cp::is_valid(std::move(e)) : cp::is_null(std::move(e));
    }
    if (IsKeyword(next, "in") || (IsKeyword(next, "not") && pos_ + 1 < tokens_.size() &&
                                  IsKeyword(tokens_[pos_ + 1], "in"))) {
      const bool negated = TakeKeyword("not");
      Take();  // "in"
      ARROW_ASSIGN_OR_RAISE(auto in, In(left));
      return negated ? cp::not_(std::move(in)) : in;
    }
    return Condition(left);
  }

  arrow::Result<Operand> ParseOperand() {
    Token t = Take();
    Operand out{t, nullptr, nullptr};
    switch (t.kind) {
      case Token::kString:
        out.literal = arrow::MakeScalar(t.text);
        return out;
      case Token::kNumber: {
        ARROW_ASSIGN_OR_RAISE(out.literal, Number(t));
        return out;
      }
      case Token::kQuotedName: {
        ARROW_ASSIGN_OR_RAISE(out.field, Column(t));
        return out;
      }
      case Token::kWord: {
        const std::string word = arrow::internal::AsciiToLower(t.text);
        if (word == "true" || word == "false") {
          out.literal = arrow::MakeScalar(word == "true");
          return out;
        }
        if (word == "null") {
          out.literal = arrow::MakeNullScalar(arrow::null());
          return out;
        }
        if (word == "and" || word == "or" || word == "not" || word == "is" || word == "in") {
          return ErrorAt(t, "expected a column or a value");
        }
        ARROW_ASSIGN_OR_RAISE(out.field, Column(t));
        return out;
      }
      default:
        return ErrorAt(t, "expected a column or a value");
    }
  }

  arrow::Result<std::shared_ptr<arrow::Field>> Column(const Token& t) const {
    auto field = schema_.GetFieldByName(t.text);
    if (field) return field;
    std::string names;
    for (const auto& f : schema_.fields()) names += (names.empty() ? "" : ", ") + f->name();
    if (schema_.GetFieldIndex(t.text) == -1 && !schema_.GetAllFieldsByName(t.text).empty()) {
      return ErrorAt(t, "ambiguous column '" + t.text + "' (several columns have this name)");
    }
    return ErrorAt(t, "unknown column '" + t.text + "' (columns: " + names + ")");
  }

  static arrow::Result<std::shared_ptr<arrow::Scalar>> Number(const Token& t) {
    const char* b = t.text.data();
    const char* e = b + t.text.size();
    if (t.text.find_first_of(".eE") == std::string::npos) {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(b, e, v);
      if (ec == std::errc() && end == e) return arrow::MakeScalar(v);
      if (ec == std::errc::result_out_of_range) return ErrorAt(t, "number out of range");
    } else {
      double v = 0;
      auto [end, ec] = std::from_chars(b, e, v);
      if (ec == std::errc() && end == e) return arrow::MakeScalar(v);
    }
    return ErrorAt(t, "malformed number");
  }

  // `literal` as `type` if Arrow can cast it; else as it is (Arrow's promotion decides).
  static std::shared_ptr<arrow::Scalar> CastLiteral(const std::shared_ptr<arrow::Scalar>& literal,
                                                    const std::shared_ptr<arrow::DataType>& type) {
    auto cast = SafeCast(literal, type);
    return cast.ok() ? *cast : literal;
  }

  arrow::Result<cp::Expression> Compare(const Token& op, Operand left, Operand right) {
    if (left.is_null() || right.is_null()) {
      return ErrorAt(op, "a comparison with null is never true; use 'is null' or 'is not null'");
    }
    if (left.is_column() && !right.is_column()) {
      right.literal = CastLiteral(right.literal, left.field->type());
    } else if (right.is_column() && !left.is_column()) {
      left.literal = CastLiteral(left.literal, right.field->type());
    }
    const std::string& o = op.text;
    const char* function = o == "=" || o == "==" ? "equal"
                           : o == "!=" || o == "<>" ? "not_equal"
                           : o == "<"              ? "less"
                           : o == "<="             ? "less_equal"
                           : o == ">"              ? "greater"
                           : o == ">="             ? "greater_equal"
                                                   : nullptr;
    if (!function) return ErrorAt(op, "unknown operator");
    auto expr = cp::call(function, {left.ToExpression(), right.ToExpression()});
    auto bound = expr.Bind(schema_);
    if (!bound.ok()) {
      return ErrorAt(op, "cannot compare " + left.Name() + " with " + right.Name());
    }
    return expr;
  }

  arrow::Result<cp::Expression> In(const Operand& subject) {
    if (!subject.is_column()) return ErrorAt(subject.token, "'in' needs a column before it");
    if (Peek().kind != Token::kLParen) return ErrorAt(Peek(), "expected '(' after 'in'");
    Take();
    const auto& type = subject.field->type();
    ARROW_ASSIGN_OR_RAISE(auto builder, arrow::MakeBuilder(type));
    size_t items = 0;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto item, ParseOperand());
      if (item.is_column()) return ErrorAt(item.token, "an 'in' list holds values, not columns");
      if (item.is_null()) return ErrorAt(item.token, "null in an 'in' list; use 'is null'");
      if (++items > kMaxInItems) {
        return ErrorAt(item.token, "more than " + std::to_string(kMaxInItems) +
                                       " values in an 'in' list");
      }
      auto cast = SafeCast(item.literal, type);
      if (!cast.ok()) {
        return ErrorAt(item.token, "value cannot be cast to " + subject.Name() + ": " +
                                       cast.status().message());
      }
      ARROW_RETURN_NOT_OK(builder->AppendScalar(**cast));
      if (Peek().kind == Token::kComma) {
        Take();
        continue;
      }
      if (Peek().kind != Token::kRParen) return ErrorAt(Peek(), "expected ',' or ')'");
      Take();
      break;
    }
    ARROW_ASSIGN_OR_RAISE(auto values, builder->Finish());
    return cp::call("is_in", {subject.ToExpression()},
                    cp::SetLookupOptions(arrow::Datum(values)));
  }

  // An operand standing alone must be a condition itself: a boolean column or true/false.
  arrow::Result<cp::Expression> Condition(const Operand& operand) const {
    const auto& type = operand.is_column() ? operand.field->type() : operand.literal->type;
    if (type->id() != arrow::Type::BOOL) {
      return ErrorAt(operand.token, operand.Name() +
                                        " is not a condition; compare it (e.g. x > 0, x = 'a')");
    }
    return operand.ToExpression();
  }

  std::vector<Token> tokens_;
  const arrow::Schema& schema_;
  size_t pos_ = 0;
};

}  // namespace

arrow::Result<cp::Expression> ParseFilter(std::string_view text, const arrow::Schema& schema) {
  ARROW_RETURN_NOT_OK(InitializeCompute());
  if (text.size() > kMaxFilterLength) {
    return arrow::Status::Invalid("filter: longer than ", kMaxFilterLength, " characters");
  }
  ARROW_ASSIGN_OR_RAISE(auto tokens, Tokenize(text));
  if (tokens.size() == 1) return arrow::Status::Invalid("filter: empty");
  Parser parser(std::move(tokens), schema);
  ARROW_ASSIGN_OR_RAISE(auto expr, parser.Parse());
  auto bound = expr.Bind(schema);
  if (!bound.ok()) return arrow::Status::Invalid("filter: ", bound.status().message());
  if (bound->type()->id() != arrow::Type::BOOL) {
    return arrow::Status::Invalid("filter: not a condition (its type is ",
                                  bound->type()->ToString(), ")");
  }
  return std::move(*bound);
}

}  // namespace quiver
