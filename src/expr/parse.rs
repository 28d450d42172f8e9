//! Text -> [`Ast`]: a lexer and a precedence-climbing parser for quadrant's
//! SQL expression subset. Anything outside the subset is a parse error with
//! the byte offset where it starts.

use super::{Ast, BinOp, Kind, Span};

/// Deeper nesting than this is refused: no legitimate rule needs it, and it
/// keeps hostile input from overflowing the stack.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub span: Span,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Num(f64),
    Str(String),
    /// A bare word: a name or a keyword (keywords are matched ignoring case).
    Word(String),
    /// A "double-quoted" name: never a keyword.
    Quoted(String),
    Sym(&'static str),
    Eof,
}

struct Token {
    tok: Tok,
    span: Span,
}

fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && bytes.get(i + 1) == Some(&b'-') {
            // SQL line comment.
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let tok = if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'_') {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let mut j = i + 1;
                if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j].is_ascii_digit() {
                    i = j;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = src[start..i].chars().filter(|&c| c != '_').collect();
            let bad = || ParseError {
                span: Span::new(start, i),
                message: format!("`{}` is not a number", &src[start..i]),
            };
            if text.contains(['.', 'e', 'E']) {
                let v: f64 = text.parse().map_err(|_| bad())?;
                if !v.is_finite() {
                    return Err(bad());
                }
                Tok::Num(v)
            } else {
                Tok::Int(text.parse().map_err(|_| bad())?)
            }
        } else if c == b'\'' || c == b'"' {
            let quote = c;
            i += 1;
            let mut text = String::new();
            loop {
                match src[i..].find(quote as char) {
                    None => {
                        return Err(ParseError {
                            span: Span::new(start, src.len()),
                            message: "unterminated quote".into(),
                        });
                    }
                    Some(off) => {
                        text.push_str(&src[i..i + off]);
                        i += off + 1;
                        // A doubled quote stands for one quote character.
                        if bytes.get(i) == Some(&quote) {
                            text.push(quote as char);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            if quote == b'\'' {
                Tok::Str(text)
            } else {
                Tok::Quoted(text)
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            // `params.name` is accepted as a spelling of the param `name`.
            Tok::Word(src[start..i].to_string())
        } else {
            let two = src.get(i..i + 2).unwrap_or("");
            let sym = match two {
                "<=" => Some("<="),
                ">=" => Some(">="),
                "<>" | "!=" => Some("<>"),
                _ => None,
            };
            if let Some(sym) = sym {
                i += 2;
                Tok::Sym(sym)
            } else {
                let sym = match c {
                    b'+' => "+",
                    b'-' => "-",
                    b'*' => "*",
                    b'/' => "/",
                    b'=' => "=",
                    b'<' => "<",
                    b'>' => ">",
                    b'(' => "(",
                    b')' => ")",
                    b',' => ",",
                    b'.' => ".",
                    _ => {
                        let ch = src[i..].chars().next().expect("in bounds");
                        return Err(ParseError {
                            span: Span::new(i, i + ch.len_utf8()),
                            message: format!("unexpected character `{ch}`"),
                        });
                    }
                };
                i += 1;
                Tok::Sym(sym)
            }
        };
        tokens.push(Token {
            tok,
            span: Span::new(start, i),
        });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        span: Span::new(src.len(), src.len()),
    });
    Ok(tokens)
}

/// Words that cannot be used as bare names.
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "is", "null", "between", "in", "case", "when", "then", "else", "end", "true", "false",
];

pub fn parse(src: &str) -> Result<Ast, ParseError> {
    let tokens = lex(src)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    if parser.peek() == &Tok::Eof {
        return Err(ParseError {
            span: Span::new(0, src.len()),
            message: "the expression is empty".into(),
        });
    }
    let ast = parser.expr()?;
    if parser.peek() != &Tok::Eof {
        return Err(parser.unexpected("an operator or the end of the expression"));
    }
    Ok(ast)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }

    fn span(&self) -> Span {
        self.tokens[self.pos].span
    }

    fn prev_end(&self) -> usize {
        self.tokens[self.pos.saturating_sub(1)].span.end
    }

    fn bump(&mut self) -> Tok {
        let tok = self.tokens[self.pos].tok.clone();
        if tok != Tok::Eof {
            self.pos += 1;
        }
        tok
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn is_kw_at(&self, offset: usize, kw: &str) -> bool {
        matches!(self.tokens.get(self.pos + offset).map(|t| &t.tok), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(s) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ParseError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{}`", kw.to_uppercase())))
        }
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), ParseError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{sym}`")))
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        let found = match self.peek() {
            Tok::Eof => "the end of the expression".to_string(),
            Tok::Int(v) => format!("`{v}`"),
            Tok::Num(v) => format!("`{v}`"),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Word(w) => format!("`{w}`"),
            Tok::Quoted(w) => format!("\"{w}\""),
            Tok::Sym(s) => format!("`{s}`"),
        };
        ParseError {
            span: self.span(),
            message: format!("expected {expected}, found {found}"),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                span: self.span(),
                message: format!("the expression nests deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Ast, ParseError> {
        self.enter()?;
        let result = self.or();
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Result<Ast, ParseError> {
        let mut left = self.and()?;
        while self.eat_kw("or") {
            let right = self.and()?;
            left = Ast::binary(BinOp::Or, left, right);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, ParseError> {
        let mut left = self.not()?;
        while self.eat_kw("and") {
            let right = self.not()?;
            left = Ast::binary(BinOp::And, left, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Ast, ParseError> {
        let start = self.span().start;
        if self.eat_kw("not") {
            self.enter()?;
            let inner = self.not();
            self.depth -= 1;
            let inner = inner?;
            let span = Span::new(start, inner.span.end);
            return Ok(Ast::new(Kind::Not(Box::new(inner)), span));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Ast, ParseError> {
        let left = self.additive()?;
        let start = left.span.start;
        let op = match self.peek() {
            Tok::Sym("=") => Some(BinOp::Eq),
            Tok::Sym("<>") => Some(BinOp::NotEq),
            Tok::Sym("<") => Some(BinOp::Lt),
            Tok::Sym("<=") => Some(BinOp::LtEq),
            Tok::Sym(">") => Some(BinOp::Gt),
            Tok::Sym(">=") => Some(BinOp::GtEq),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let right = self.additive()?;
            return Ok(Ast::binary(op, left, right));
        }
        if self.eat_kw("is") {
            let negated = self.eat_kw("not");
            self.expect_kw("null")?;
            let span = Span::new(start, self.prev_end());
            return Ok(Ast::new(
                Kind::IsNull {
                    expr: Box::new(left),
                    negated,
                },
                span,
            ));
        }
        let negated = if self.is_kw("not") && (self.is_kw_at(1, "between") || self.is_kw_at(1, "in")) {
            self.bump();
            true
        } else {
            false
        };
        if self.eat_kw("between") {
            let low = self.additive()?;
            self.expect_kw("and")?;
            let high = self.additive()?;
            let span = Span::new(start, high.span.end);
            return Ok(Ast::new(
                Kind::Between {
                    expr: Box::new(left),
                    low: Box::new(low),
                    high: Box::new(high),
                    negated,
                },
                span,
            ));
        }
        if self.eat_kw("in") {
            self.expect_sym("(")?;
            let mut list = vec![self.expr()?];
            while self.eat_sym(",") {
                list.push(self.expr()?);
            }
            self.expect_sym(")")?;
            let span = Span::new(start, self.prev_end());
            return Ok(Ast::new(
                Kind::InList {
                    expr: Box::new(left),
                    list,
                    negated,
                },
                span,
            ));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Ast, ParseError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.eat_sym("+") {
                BinOp::Add
            } else if self.eat_sym("-") {
                BinOp::Sub
            } else {
                return Ok(left);
            };
            let right = self.multiplicative()?;
            left = Ast::binary(op, left, right);
        }
    }

    fn multiplicative(&mut self) -> Result<Ast, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat_sym("*") {
                BinOp::Mul
            } else if self.eat_sym("/") {
                BinOp::Div
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Ast::binary(op, left, right);
        }
    }

    fn unary(&mut self) -> Result<Ast, ParseError> {
        let start = self.span().start;
        if self.eat_sym("-") {
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            let inner = inner?;
            let span = Span::new(start, inner.span.end);
            // Fold negative literals so that `-1` is a literal, not an operation.
            let kind = match inner.kind {
                Kind::Int(v) => Kind::Int(-v),
                Kind::Num(v) => Kind::Num(-v),
                other => Kind::Neg(Box::new(Ast::new(other, inner.span))),
            };
            return Ok(Ast::new(kind, span));
        }
        if self.eat_sym("+") {
            return self.unary();
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Ast, ParseError> {
        let span = self.span();
        match self.peek().clone() {
            Tok::Int(v) => {
                self.bump();
                Ok(Ast::new(Kind::Int(v), span))
            }
            Tok::Num(v) => {
                self.bump();
                Ok(Ast::new(Kind::Num(v), span))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Ast::new(Kind::Str(s), span))
            }
            Tok::Quoted(name) => {
                self.bump();
                Ok(Ast::new(Kind::Name(name), span))
            }
            Tok::Sym("(") => {
                self.bump();
                let inner = self.expr()?;
                self.expect_sym(")")?;
                Ok(Ast::new(inner.kind, Span::new(span.start, self.prev_end())))
            }
            Tok::Word(w) => {
                let lower = w.to_ascii_lowercase();
                match lower.as_str() {
                    "null" => {
                        self.bump();
                        Ok(Ast::new(Kind::Null, span))
                    }
                    "true" | "false" => {
                        self.bump();
                        Ok(Ast::new(Kind::Bool(lower == "true"), span))
                    }
                    "case" => self.case(),
                    // DATE 'YYYY-MM-DD'
                    "date" if matches!(self.tokens.get(self.pos + 1).map(|t| &t.tok), Some(Tok::Str(_))) => {
                        self.bump();
                        let lit_span = self.span();
                        let Tok::Str(text) = self.bump() else {
                            unreachable!("checked above")
                        };
                        match super::parse_date(&text) {
                            Some(days) => Ok(Ast::new(Kind::Date(days), Span::new(span.start, lit_span.end))),
                            None => Err(ParseError {
                                span: lit_span,
                                message: format!("'{text}' is not a date: use DATE 'YYYY-MM-DD'"),
                            }),
                        }
                    }
                    kw if KEYWORDS.contains(&kw) => Err(self.unexpected("a value, a name or `(`")),
                    "select" | "from" | "where" | "join" | "union" | "insert" | "update" | "delete" | "drop"
                    | "create" | "with" | "exec" => Err(ParseError {
                        span,
                        message: format!(
                            "`{w}`: an expression is a single SQL expression; statements, subqueries and tables are not part of the language"
                        ),
                    }),
                    _ => {
                        self.bump();
                        if self.eat_sym("(") {
                            return self.call(w, span);
                        }
                        // `params.x` names the param `x`.
                        if lower == "params" && self.eat_sym(".") {
                            let name_span = self.span();
                            return match self.bump() {
                                Tok::Word(name) | Tok::Quoted(name) => {
                                    Ok(Ast::new(Kind::Name(name), Span::new(span.start, name_span.end)))
                                }
                                _ => {
                                    self.pos -= 1;
                                    Err(self.unexpected("a param name after `params.`"))
                                }
                            };
                        }
                        if matches!(self.peek(), Tok::Sym(".")) {
                            return Err(ParseError {
                                span: self.span(),
                                message: "qualified names (`table.column`) are not part of the \
                                          expression language: use the plain column name"
                                    .into(),
                            });
                        }
                        Ok(Ast::new(Kind::Name(w), span))
                    }
                }
            }
            _ => Err(self.unexpected("a value, a name or `(`")),
        }
    }

    fn call(&mut self, name: String, name_span: Span) -> Result<Ast, ParseError> {
        let mut args = Vec::new();
        if !self.eat_sym(")") {
            if self.is_kw("distinct") {
                return Err(ParseError {
                    span: self.span(),
                    message: "DISTINCT is not part of the expression language".into(),
                });
            }
            args.push(self.expr()?);
            while self.eat_sym(",") {
                args.push(self.expr()?);
            }
            self.expect_sym(")")?;
        }
        let span = Span::new(name_span.start, self.prev_end());
        Ok(Ast::new(Kind::Call { name, name_span, args }, span))
    }

    fn case(&mut self) -> Result<Ast, ParseError> {
        let start = self.span().start;
        self.bump();
        if self.is_kw("end") {
            return Err(self.unexpected("`WHEN`"));
        }
        let operand = if self.is_kw("when") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut whens = Vec::new();
        while self.eat_kw("when") {
            let condition = self.expr()?;
            self.expect_kw("then")?;
            let result = self.expr()?;
            whens.push((condition, result));
        }
        if whens.is_empty() {
            return Err(self.unexpected("`WHEN`"));
        }
        let otherwise = if self.eat_kw("else") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_kw("end")?;
        Ok(Ast::new(
            Kind::Case {
                operand,
                whens,
                otherwise,
            },
            Span::new(start, self.prev_end()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(src: &str) -> String {
        parse(src)
            .map(|a| a.to_string())
            .unwrap_or_else(|e| format!("error at {}: {}", e.span.start, e.message))
    }

    #[test]
    fn precedence_follows_sql() {
        assert_eq!(shape("a + b * c"), "(a + (b * c))");
        assert_eq!(shape("a - b - c"), "((a - b) - c)");
        assert_eq!(shape("a OR b AND NOT c"), "(a OR (b AND (NOT c)))");
        assert_eq!(shape("a = 1 AND b <> 2"), "((a = 1) AND (b <> 2))");
        assert_eq!(shape("-a * 2"), "((-a) * 2)");
        assert_eq!(shape("x BETWEEN 1 AND 2 AND y"), "((x BETWEEN 1 AND 2) AND y)");
        assert_eq!(shape("x NOT IN (1, 2)"), "(x NOT IN (1, 2))");
        assert_eq!(shape("x IS NOT NULL"), "(x IS NOT NULL)");
        assert_eq!(shape("params.cut >= 0.8"), "(cut >= 0.8)");
        assert_eq!(shape("-1.5e3"), "-1500");
        assert_eq!(shape("1_000_000"), "1000000");
        assert_eq!(shape("'it''s'"), "'it''s'");
        assert_eq!(
            shape("CASE WHEN a > 1 THEN 'x' ELSE 'y' END"),
            "CASE WHEN (a > 1) THEN 'x' ELSE 'y' END"
        );
        assert_eq!(shape("coalesce(a, 0)"), "coalesce(a, 0)");
        assert_eq!(shape("\"odd name\" + 1"), "(\"odd name\" + 1)");
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert_eq!(
            shape("a +"),
            "error at 3: expected a value, a name or `(`, found the end of the expression"
        );
        assert_eq!(
            shape("a b"),
            "error at 2: expected an operator or the end of the expression, found `b`"
        );
        assert_eq!(shape("(a"), "error at 2: expected `)`, found the end of the expression");
        assert_eq!(shape("a ; drop"), "error at 2: unexpected character `;`");
        assert_eq!(shape("'abc"), "error at 0: unterminated quote");
        assert_eq!(shape(""), "error at 0: the expression is empty");
        assert_eq!(
            shape("a < b < c"),
            "error at 6: expected an operator or the end of the expression, found `<`"
        );
        assert_eq!(
            shape("t.a"),
            "error at 1: qualified names (`table.column`) are not part of the expression language: use the plain column name"
        );
        assert_eq!(shape("CASE END"), "error at 5: expected `WHEN`, found `END`");
        assert_eq!(shape("1e999"), "error at 0: `1e999` is not a number");
        assert_eq!(
            shape("99999999999999999999"),
            "error at 0: `99999999999999999999` is not a number"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert!(shape(&deep).contains("nests deeper"));
        let negs = "- ".repeat(10_000) + "a";
        assert!(shape(&negs).contains("nests deeper"));
        let nots = "NOT ".repeat(10_000) + "a";
        assert!(shape(&nots).contains("nests deeper"));
    }
}
