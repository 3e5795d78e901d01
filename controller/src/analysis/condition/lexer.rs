//! Splits a condition into tokens, each with the 1-based character column it starts at.

use super::CompileError;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum TokenKind {
    Number(f64),
    /// A string literal with its escapes resolved.
    String(String),
    /// A name or a word operator (`and`, `in`, `not`, ...); the parser tells them apart.
    Word,
    Symbol,
    End,
}

#[derive(Clone, Debug)]
pub(super) struct Token<'s> {
    pub kind: TokenKind,
    /// The token as written.
    pub text: &'s str,
    pub column: usize,
}

/// Longest first, so that `**` is found before `*`.
const SYMBOLS: [&str; 31] = [
    "**", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "..", "(", ")", "[", "]", "{", "}", ",", ":", ".", "?", "+",
    "-", "*", "/", "%", "^", "<", ">", "!", "#", "|",
];

/// The tokens of `source`, without an end token (the parser supplies it).
pub(super) fn tokenize(source: &str) -> Result<Vec<Token<'_>>, CompileError> {
    let mut lexer = Lexer { source, chars: source.char_indices().collect(), position: 0 };
    let mut tokens = Vec::new();
    while let Some(token) = lexer.next_token()? {
        tokens.push(token);
    }
    Ok(tokens)
}

struct Lexer<'s> {
    source: &'s str,
    /// Byte offset and character of each character; an index here is a column minus one.
    chars: Vec<(usize, char)>,
    position: usize,
}

fn error_at(position: usize, reason: impl Into<String>) -> CompileError {
    CompileError { column: position + 1, reason: reason.into() }
}

impl<'s> Lexer<'s> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.position + ahead).map(|&(_, c)| c)
    }

    fn peek_is(&self, ahead: usize, test: impl FnOnce(char) -> bool) -> bool {
        self.peek(ahead).is_some_and(test)
    }

    fn byte_offset(&self, position: usize) -> usize {
        self.chars.get(position).map_or(self.source.len(), |&(offset, _)| offset)
    }

    fn text_from(&self, start: usize) -> &'s str {
        let source = self.source;
        &source[self.byte_offset(start)..self.byte_offset(self.position)]
    }

    fn skip_while(&mut self, test: impl Fn(char) -> bool) {
        while self.peek_is(0, &test) {
            self.position += 1;
        }
    }

    fn next_token(&mut self) -> Result<Option<Token<'s>>, CompileError> {
        self.skip_while(char::is_whitespace);
        let start = self.position;
        let Some(first) = self.peek(0) else { return Ok(None) };
        let kind = match first {
            '0'..='9' => self.number(start)?,
            '.' if self.peek_is(1, |c| c.is_ascii_digit()) => self.number(start)?,
            '"' | '\'' => self.quoted(first)?,
            '`' => self.raw()?,
            c if is_name_char(c) => {
                self.skip_while(|c| is_name_char(c) || c.is_ascii_digit());
                TokenKind::Word
            }
            _ => self.symbol(first)?,
        };
        Ok(Some(Token { kind, text: self.text_from(start), column: start + 1 }))
    }

    fn symbol(&mut self, first: char) -> Result<TokenKind, CompileError> {
        let rest = &self.source[self.byte_offset(self.position)..];
        // `a ?.5 : 1` is a conditional with a number, not optional chaining.
        let chains_optionally = !self.peek_is(2, |c| c.is_ascii_digit());
        let symbol =
            SYMBOLS.iter().find(|symbol| rest.starts_with(**symbol) && (**symbol != "?." || chains_optionally));
        let symbol = symbol.ok_or_else(|| error_at(self.position, format!("unexpected character {first:?}")))?;
        self.position += symbol.len();
        Ok(TokenKind::Symbol)
    }

    fn number(&mut self, start: usize) -> Result<TokenKind, CompileError> {
        let radix = match (self.peek(0), self.peek(1)) {
            (Some('0'), Some('x' | 'X')) => 16,
            (Some('0'), Some('o' | 'O')) => 8,
            (Some('0'), Some('b' | 'B')) => 2,
            _ => 10,
        };
        let value = if radix == 10 {
            self.decimal()
        } else {
            self.position += 2;
            self.integer(radix)
        };
        // `1abc` or `0b102` is a typo, not a number followed by a name.
        let run_on = self.peek_is(0, |c| c.is_alphanumeric() || c == '_');
        match value {
            Some(number) if !run_on => Ok(TokenKind::Number(number)),
            _ => Err(error_at(start, "invalid number literal")),
        }
    }

    fn skip_digits(&mut self, radix: u32) {
        self.skip_while(|c| c.is_digit(radix) || c == '_');
    }

    fn decimal(&mut self) -> Option<f64> {
        let start = self.position;
        self.skip_digits(10);
        if self.peek(0) == Some('.') && self.peek_is(1, |c| c.is_ascii_digit()) {
            self.position += 1;
            self.skip_digits(10);
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek(1), Some('+' | '-')));
            if self.peek_is(1 + sign, |c| c.is_ascii_digit()) {
                self.position += 1 + sign;
                self.skip_digits(10);
            }
        }
        self.text_from(start).replace('_', "").parse().ok()
    }

    fn integer(&mut self, radix: u32) -> Option<f64> {
        let start = self.position;
        self.skip_digits(radix);
        let digits = self.text_from(start).replace('_', "");
        i64::from_str_radix(&digits, radix).ok().map(|number| number as f64)
    }

    fn quoted(&mut self, quote: char) -> Result<TokenKind, CompileError> {
        let start = self.position;
        self.position += 1;
        let mut text = String::new();
        loop {
            let Some(c) = self.peek(0) else { return Err(error_at(start, "unterminated string")) };
            self.position += 1;
            match c {
                '\\' => {
                    let backslash = self.position - 1;
                    match self.escape() {
                        Some(escaped) => text.push(escaped),
                        None if self.peek(0).is_none() => return Err(error_at(start, "unterminated string")),
                        None => return Err(error_at(backslash, "invalid escape sequence")),
                    }
                }
                c if c == quote => return Ok(TokenKind::String(text)),
                c => text.push(c),
            }
        }
    }

    /// The character a backslash escape stands for, as in Go's string literals.
    fn escape(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        let escaped = match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'v' => '\x0b',
            '\\' | '\'' | '"' => c,
            'x' | 'u' | 'U' => {
                let digits = match c {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                self.position += 1;
                return self.code_point(digits, 16);
            }
            '0'..='7' => return self.code_point(3, 8),
            _ => return None,
        };
        self.position += 1;
        Some(escaped)
    }

    fn code_point(&mut self, digits: usize, radix: u32) -> Option<char> {
        let text: String =
            (0..digits).map(|ahead| self.peek(ahead).filter(|c| c.is_digit(radix))).collect::<Option<_>>()?;
        let escaped = char::from_u32(u32::from_str_radix(&text, radix).ok()?)?;
        self.position += digits;
        Some(escaped)
    }

    fn raw(&mut self) -> Result<TokenKind, CompileError> {
        let start = self.position;
        self.position += 1;
        self.skip_while(|c| c != '`');
        if self.peek(0).is_none() {
            return Err(error_at(start, "unterminated string"));
        }
        let text = self.text_from(start + 1).to_owned();
        self.position += 1;
        Ok(TokenKind::String(text))
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}
