//! Builds the tree by precedence climbing, with expr's operators, precedences and associativity.

use super::CompileError;
use super::ast::{
    ArithmeticOperator, ComparisonOperator, Expr, Kind, Link, LogicalOperator, Operator, Step, UnaryOperator,
};
use super::functions::Signature;
use super::lexer::{self, Token, TokenKind};
use super::value::Value;

/// How deeply expressions may nest. It bounds the parser's recursion and the depth of the tree,
/// and with it the evaluator's recursion.
pub(super) const MAX_DEPTH: usize = 100;

// Binding strengths, from expr's operator table.
const OR: u16 = 10;
const AND: u16 = 15;
const COMPARISON: u16 = 20;
const SUM: u16 = 30;
const NOT: u16 = 50;
const PRODUCT: u16 = 60;
const SIGN: u16 = 90;
const POWER: u16 = 100;
const COALESCE: u16 = 500;

/// The word operators, which are not names.
const OPERATOR_WORDS: [&str; 8] = ["and", "or", "not", "in", "contains", "startsWith", "endsWith", "matches"];

pub(super) fn parse(source: &str) -> Result<Expr, CompileError> {
    let tokens = lexer::tokenize(source)?;
    let end = Token { kind: TokenKind::End, text: "", column: source.chars().count() + 1 };
    let mut parser = Parser { tokens: &tokens, end: &end, position: 0, nesting: 0, predicates: 0 };
    let root = parser.expression(0)?;
    match parser.peek() {
        token if token.kind == TokenKind::End => Ok(root),
        trailing => Err(unexpected(trailing)),
    }
}

fn error_at(column: usize, reason: impl Into<String>) -> CompileError {
    CompileError { column, reason: reason.into() }
}

fn describe(token: &Token) -> String {
    match token.kind {
        TokenKind::End => "end of expression".to_owned(),
        _ => format!("{:?}", token.text),
    }
}

fn unexpected(token: &Token) -> CompileError {
    match token.kind {
        TokenKind::End => error_at(token.column, "unexpected end of expression"),
        _ => error_at(token.column, format!("unexpected token {}", describe(token))),
    }
}

/// A node, unless the tree would get too deep to evaluate safely.
fn node(kind: Kind, column: usize) -> Result<Expr, CompileError> {
    let expr = Expr::new(kind);
    if expr.depth > MAX_DEPTH { Err(error_at(column, "expression nested too deeply")) } else { Ok(expr) }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Infix {
    Logical(LogicalOperator),
    Arithmetic(ArithmeticOperator),
    Coalesce,
    /// The operator, and whether `not` precedes it.
    Comparison(ComparisonOperator, bool),
}

impl Infix {
    fn precedence(self) -> u16 {
        match self {
            Infix::Logical(LogicalOperator::Or) => OR,
            Infix::Logical(LogicalOperator::And) => AND,
            Infix::Comparison(..) => COMPARISON,
            Infix::Arithmetic(ArithmeticOperator::Add | ArithmeticOperator::Subtract) => SUM,
            Infix::Arithmetic(ArithmeticOperator::Power) => POWER,
            Infix::Arithmetic(_) => PRODUCT,
            Infix::Coalesce => COALESCE,
        }
    }
}

/// The operator of kind `O` that `token` spells, if any.
fn operator<O: Operator>(token: &Token) -> Option<O> {
    if !matches!(token.kind, TokenKind::Word | TokenKind::Symbol) {
        return None;
    }
    // The words and `^` are other spellings of symbols.
    let symbol = match token.text {
        "and" => "&&",
        "or" => "||",
        "not" => "!",
        "^" => "**",
        text => text,
    };
    O::ALL.iter().copied().find(|operator| operator.symbol() == symbol)
}

fn comparison_operator(token: &Token) -> Result<Option<ComparisonOperator>, CompileError> {
    if token.kind == TokenKind::Word && token.text == "matches" {
        return Err(error_at(token.column, "matches is not supported"));
    }
    Ok(operator(token))
}

struct Parser<'t, 's> {
    tokens: &'t [Token<'s>],
    end: &'t Token<'s>,
    position: usize,
    /// How deep the parser's recursion is.
    nesting: usize,
    /// How many predicates enclose the current token: `#` is valid only inside one.
    predicates: usize,
}

impl<'t, 's> Parser<'t, 's> {
    fn peek_at(&self, ahead: usize) -> &'t Token<'s> {
        self.tokens.get(self.position + ahead).unwrap_or(self.end)
    }

    fn peek(&self) -> &'t Token<'s> {
        self.peek_at(0)
    }

    fn is(&self, symbol: &str) -> bool {
        let token = self.peek();
        token.kind == TokenKind::Symbol && token.text == symbol
    }

    fn eat(&mut self, symbol: &str) -> bool {
        let found = self.is(symbol);
        if found {
            self.position += 1;
        }
        found
    }

    fn expect(&mut self, symbol: &str) -> Result<(), CompileError> {
        if self.eat(symbol) {
            return Ok(());
        }
        let found = self.peek();
        Err(error_at(found.column, format!("expected {symbol:?} but found {}", describe(found))))
    }

    /// An expression whose operators all bind at least as tightly as `min_precedence`.
    fn expression(&mut self, min_precedence: u16) -> Result<Expr, CompileError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(error_at(self.peek().column, "expression nested too deeply"));
        }
        let parsed = self.binary(min_precedence);
        self.nesting -= 1;
        parsed
    }

    fn binary(&mut self, min_precedence: u16) -> Result<Expr, CompileError> {
        let mut left = self.prefix()?;
        let mut after_coalesce = false;
        while let Some((infix, width)) = self.infix()? {
            if infix.precedence() < min_precedence {
                break;
            }
            let operator = self.peek();
            // expr refuses `a ?? b + c` rather than pick a reading for it.
            if after_coalesce && infix != Infix::Coalesce {
                let reason = format!("{:?} and \"??\" cannot be mixed without parentheses", operator.text);
                return Err(error_at(operator.column, reason));
            }
            after_coalesce = infix == Infix::Coalesce;
            self.position += width;
            left = match infix {
                Infix::Comparison(first, negated) => self.comparisons(left, first, negated, operator.column)?,
                _ => {
                    // A left-associative operator takes only tighter ones to its right.
                    let right_associative = infix == Infix::Arithmetic(ArithmeticOperator::Power);
                    let right_precedence = infix.precedence() + u16::from(!right_associative);
                    let right = Box::new(self.expression(right_precedence)?);
                    let left = Box::new(left);
                    let kind = match infix {
                        Infix::Logical(op) => Kind::Logical(op, left, right),
                        Infix::Arithmetic(op) => Kind::Arithmetic(op, left, right),
                        _ => Kind::Coalesce(left, right),
                    };
                    node(kind, operator.column)?
                }
            };
        }
        if min_precedence == 0 { self.conditional(left) } else { Ok(left) }
    }

    /// The infix operator at the current token, and how many tokens it spans (`not in`: two).
    fn infix(&self) -> Result<Option<(Infix, usize)>, CompileError> {
        let token = self.peek();
        if token.kind == TokenKind::Word && token.text == "not" {
            let next = self.peek_at(1);
            return match comparison_operator(next)? {
                Some(operator) if operator.negatable() => Ok(Some((Infix::Comparison(operator, true), 2))),
                _ => Err(unexpected(next)),
            };
        }
        if let Some(operator) = comparison_operator(token)? {
            return Ok(Some((Infix::Comparison(operator, false), 1)));
        }
        let coalesce = token.kind == TokenKind::Symbol && token.text == "??";
        let infix = operator(token)
            .map(Infix::Logical)
            .or_else(|| operator(token).map(Infix::Arithmetic))
            .or(coalesce.then_some(Infix::Coalesce));
        Ok(infix.map(|infix| (infix, 1)))
    }

    /// `a < b <= c ...`, which expr reads as `a < b && b <= c && ...`.
    fn comparisons(
        &mut self,
        first: Expr,
        mut operator: ComparisonOperator,
        mut negated: bool,
        column: usize,
    ) -> Result<Expr, CompileError> {
        let mut links = Vec::new();
        loop {
            let operand = self.expression(COMPARISON + 1)?;
            links.push(Link { operator, negated, operand });
            match self.infix()? {
                Some((Infix::Comparison(next, next_negated), width)) => {
                    (operator, negated) = (next, next_negated);
                    self.position += width;
                }
                _ => break,
            }
        }
        node(Kind::Comparison { first: Box::new(first), links }, column)
    }

    fn conditional(&mut self, condition: Expr) -> Result<Expr, CompileError> {
        let column = self.peek().column;
        if !self.eat("?") {
            return Ok(condition);
        }
        let then = self.expression(0)?;
        self.expect(":")?;
        let otherwise = self.expression(0)?;
        let kind =
            Kind::Conditional { condition: Box::new(condition), then: Box::new(then), otherwise: Box::new(otherwise) };
        node(kind, column)
    }

    fn prefix(&mut self) -> Result<Expr, CompileError> {
        let token = self.peek();
        let Some(unary) = operator(token) else {
            let base = self.primary()?;
            return self.accesses(base);
        };
        self.position += 1;
        let precedence = if unary == UnaryOperator::Not { NOT } else { SIGN };
        let operand = self.expression(precedence)?;
        node(Kind::Unary(unary, Box::new(operand)), token.column)
    }

    fn primary(&mut self) -> Result<Expr, CompileError> {
        let token = self.peek();
        // `.name` inside a predicate is `#.name`: the `.` is left to `accesses`.
        if self.predicates > 0 && self.is(".") {
            return node(Kind::Element, token.column);
        }
        self.position += 1;
        let kind = match (&token.kind, token.text) {
            (TokenKind::Number(number), _) => Kind::Literal(Value::Number(*number)),
            (TokenKind::String(text), _) => Kind::Literal(Value::String(text.clone())),
            (TokenKind::Word, _) => return self.named(token),
            (TokenKind::Symbol, "(") => {
                let inner = self.expression(0)?;
                self.expect(")")?;
                return Ok(inner);
            }
            (TokenKind::Symbol, "[") => Kind::List(self.delimited("]", |parser, _| parser.expression(0))?),
            (TokenKind::Symbol, "#") if self.predicates > 0 => Kind::Element,
            (TokenKind::Symbol, "#") => return Err(error_at(token.column, "# is only valid inside a predicate")),
            _ => return Err(unexpected(token)),
        };
        node(kind, token.column)
    }

    /// A literal word, `result`, or a call.
    fn named(&mut self, token: &Token) -> Result<Expr, CompileError> {
        let kind = match token.text {
            "true" => Kind::Literal(Value::Bool(true)),
            "false" => Kind::Literal(Value::Bool(false)),
            "nil" => Kind::Literal(Value::Nil),
            _ if self.is("(") => return self.call(token),
            "result" => Kind::Result,
            word if OPERATOR_WORDS.contains(&word) => return Err(unexpected(token)),
            name => return Err(error_at(token.column, format!("unknown name {name:?}"))),
        };
        node(kind, token.column)
    }

    fn call(&mut self, name: &Token) -> Result<Expr, CompileError> {
        let unknown = || error_at(name.column, format!("unknown function {:?}", name.text));
        let signature = Signature::named(name.text).ok_or_else(unknown)?;
        self.expect("(")?;
        let arguments = self.delimited(")", |parser, position| {
            if position == 1 && signature.takes_predicate() { parser.predicate() } else { parser.expression(0) }
        })?;
        signature.check_arity(arguments.len()).map_err(|reason| error_at(name.column, reason))?;
        node(Kind::Call(signature, arguments), name.column)
    }

    /// Comma-separated items up to `close`, which may follow a trailing comma.
    fn delimited(
        &mut self,
        close: &str,
        mut item: impl FnMut(&mut Self, usize) -> Result<Expr, CompileError>,
    ) -> Result<Vec<Expr>, CompileError> {
        let mut items = Vec::new();
        while !self.is(close) {
            items.push(item(self, items.len())?);
            if !self.eat(",") {
                break;
            }
        }
        self.expect(close)?;
        Ok(items)
    }

    /// A predicate, `{# > 0.9}` or, without braces, `# > 0.9`.
    fn predicate(&mut self) -> Result<Expr, CompileError> {
        let braced = self.eat("{");
        self.predicates += 1;
        let body = self.expression(0)?;
        self.predicates -= 1;
        if braced {
            self.expect("}")?;
        }
        Ok(body)
    }

    /// The `.name`, `?.name`, `[key]` and `?.[key]` steps after `base`.
    fn accesses(&mut self, base: Expr) -> Result<Expr, CompileError> {
        let column = self.peek().column;
        let mut steps = Vec::new();
        loop {
            let optional = self.eat("?.");
            let key = if self.eat("[") {
                let key = self.expression(0)?;
                self.expect("]")?;
                key
            } else if optional || self.eat(".") {
                self.member_name()?
            } else {
                break;
            };
            steps.push(Step { key, optional });
        }
        if steps.is_empty() {
            return Ok(base);
        }
        node(Kind::Access { base: Box::new(base), steps }, column)
    }

    fn member_name(&mut self) -> Result<Expr, CompileError> {
        let token = self.peek();
        if token.kind != TokenKind::Word {
            return Err(error_at(token.column, format!("expected a name after \".\" but found {}", describe(token))));
        }
        self.position += 1;
        node(Kind::Literal(Value::String(token.text.to_owned())), token.column)
    }
}
