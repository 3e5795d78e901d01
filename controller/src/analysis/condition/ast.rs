//! The tree a condition compiles to.

use std::iter;

use super::functions::Signature;
use super::value::Value;

/// A node, and how deep the tree under it goes: the parser refuses trees deeper than
/// [`super::parser::MAX_DEPTH`], which bounds the evaluator's recursion.
#[derive(Clone, Debug)]
pub(super) struct Expr {
    pub kind: Kind,
    pub depth: usize,
}

#[derive(Clone, Debug)]
pub(super) enum Kind {
    Literal(Value),
    List(Vec<Expr>),
    /// The variable `result`: the measurement.
    Result,
    /// `#`: the element a predicate is looking at.
    Element,
    /// `base.name`, `base[key]`, `base?.name`: one node for a whole chain, so that optional
    /// chaining can end the chain early and a long chain keeps the tree shallow.
    Access {
        base: Box<Expr>,
        steps: Vec<Step>,
    },
    Unary(UnaryOperator, Box<Expr>),
    Arithmetic(ArithmeticOperator, Box<Expr>, Box<Expr>),
    Logical(LogicalOperator, Box<Expr>, Box<Expr>),
    /// `left ?? right`.
    Coalesce(Box<Expr>, Box<Expr>),
    /// `a < b <= c` means `a < b && b <= c` in expr; each operand is evaluated once here.
    Comparison {
        first: Box<Expr>,
        links: Vec<Link>,
    },
    Conditional {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Call(&'static Signature, Vec<Expr>),
}

#[derive(Clone, Debug)]
pub(super) struct Step {
    /// `.name` is stored as the key `"name"`: both spellings look up the same way.
    pub key: Expr,
    /// `?.`: a nil before it makes the whole chain nil.
    pub optional: bool,
}

#[derive(Clone, Debug)]
pub(super) struct Link {
    pub operator: ComparisonOperator,
    /// `not in`, `not contains`, ...
    pub negated: bool,
    pub operand: Expr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UnaryOperator {
    Not,
    Negate,
    Plus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArithmeticOperator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
    Power,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LogicalOperator {
    And,
    Or,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ComparisonOperator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    In,
    Contains,
    StartsWith,
    EndsWith,
}

/// An operator, and the symbol it is written (and reported) as.
pub(super) trait Operator: Copy + 'static {
    const ALL: &'static [Self];
    fn symbol(self) -> &'static str;
}

impl Expr {
    pub fn new(kind: Kind) -> Expr {
        let depth = 1 + kind.children().map(|child| child.depth).max().unwrap_or(0);
        Expr { kind, depth }
    }
}

impl Kind {
    fn children(&self) -> Box<dyn Iterator<Item = &Expr> + '_> {
        match self {
            Kind::Literal(_) | Kind::Result | Kind::Element => Box::new(iter::empty()),
            Kind::List(items) | Kind::Call(_, items) => Box::new(items.iter()),
            Kind::Access { base, steps } => Box::new(iter::once(&**base).chain(steps.iter().map(|step| &step.key))),
            Kind::Unary(_, operand) => Box::new(iter::once(&**operand)),
            Kind::Arithmetic(_, left, right) | Kind::Logical(_, left, right) | Kind::Coalesce(left, right) => {
                Box::new([&**left, &**right].into_iter())
            }
            Kind::Comparison { first, links } => {
                Box::new(iter::once(&**first).chain(links.iter().map(|link| &link.operand)))
            }
            Kind::Conditional { condition, then, otherwise } => {
                Box::new([&**condition, &**then, &**otherwise].into_iter())
            }
        }
    }
}

impl Operator for UnaryOperator {
    const ALL: &'static [UnaryOperator] = &[UnaryOperator::Not, UnaryOperator::Negate, UnaryOperator::Plus];

    fn symbol(self) -> &'static str {
        match self {
            UnaryOperator::Not => "!",
            UnaryOperator::Negate => "-",
            UnaryOperator::Plus => "+",
        }
    }
}

impl Operator for ArithmeticOperator {
    const ALL: &'static [ArithmeticOperator] = &[
        ArithmeticOperator::Add,
        ArithmeticOperator::Subtract,
        ArithmeticOperator::Multiply,
        ArithmeticOperator::Divide,
        ArithmeticOperator::Remainder,
        ArithmeticOperator::Power,
    ];

    fn symbol(self) -> &'static str {
        match self {
            ArithmeticOperator::Add => "+",
            ArithmeticOperator::Subtract => "-",
            ArithmeticOperator::Multiply => "*",
            ArithmeticOperator::Divide => "/",
            ArithmeticOperator::Remainder => "%",
            ArithmeticOperator::Power => "**",
        }
    }
}

impl Operator for LogicalOperator {
    const ALL: &'static [LogicalOperator] = &[LogicalOperator::And, LogicalOperator::Or];

    fn symbol(self) -> &'static str {
        match self {
            LogicalOperator::And => "&&",
            LogicalOperator::Or => "||",
        }
    }
}

impl Operator for ComparisonOperator {
    const ALL: &'static [ComparisonOperator] = &[
        ComparisonOperator::Equal,
        ComparisonOperator::NotEqual,
        ComparisonOperator::Less,
        ComparisonOperator::LessOrEqual,
        ComparisonOperator::Greater,
        ComparisonOperator::GreaterOrEqual,
        ComparisonOperator::In,
        ComparisonOperator::Contains,
        ComparisonOperator::StartsWith,
        ComparisonOperator::EndsWith,
    ];

    fn symbol(self) -> &'static str {
        match self {
            ComparisonOperator::Equal => "==",
            ComparisonOperator::NotEqual => "!=",
            ComparisonOperator::Less => "<",
            ComparisonOperator::LessOrEqual => "<=",
            ComparisonOperator::Greater => ">",
            ComparisonOperator::GreaterOrEqual => ">=",
            ComparisonOperator::In => "in",
            ComparisonOperator::Contains => "contains",
            ComparisonOperator::StartsWith => "startsWith",
            ComparisonOperator::EndsWith => "endsWith",
        }
    }
}

impl ComparisonOperator {
    /// The word operators, which `not` may precede (`not in`).
    pub fn negatable(self) -> bool {
        matches!(
            self,
            ComparisonOperator::In
                | ComparisonOperator::Contains
                | ComparisonOperator::StartsWith
                | ComparisonOperator::EndsWith
        )
    }
}
