//! The expression language of pipeline files: a documented subset of SQL
//! expressions. Text is parsed into an [`Ast`] ([`parse`]) and names and
//! types are checked against what the pipeline defines ([`check`]). Engines
//! lower the checked tree (`engine::polars::lower`); no SQL text ever
//! reaches an engine, and nothing here knows one.

mod check;
mod parse;

use std::fmt;

pub use check::{Names, Resolved, Type, check};
pub use parse::{ParseError, parse};

/// Byte offsets into the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// A parsed expression. A checked one is recorded in each snapshot's plan
/// (serde), so old snapshots are explained by what was computed, whatever
/// today's checker thinks of their text; spans only matter for messages.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ast {
    pub kind: Kind,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
        )
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Int(i64),
    Num(f64),
    Str(String),
    Bool(bool),
    /// A date literal, as days since 1970-01-01.
    Date(i32),
    Null,
    /// A name as written; [`check`] resolves it.
    Name(String),
    /// A column of the working frame: an account column, aggregate or feature.
    Column(String),
    /// The cycle's `as_of` date.
    AsOf,
    /// `prev(x)`: snapshot column `x` of the account in the committed
    /// snapshot of the cycle before (null when there is none).
    Prev(String),
    Neg(Box<Ast>),
    Not(Box<Ast>),
    Binary(BinOp, Box<Ast>, Box<Ast>),
    IsNull {
        expr: Box<Ast>,
        negated: bool,
    },
    Between {
        expr: Box<Ast>,
        low: Box<Ast>,
        high: Box<Ast>,
        negated: bool,
    },
    InList {
        expr: Box<Ast>,
        list: Vec<Ast>,
        negated: bool,
    },
    Case {
        operand: Option<Box<Ast>>,
        whens: Vec<(Ast, Ast)>,
        otherwise: Option<Box<Ast>>,
    },
    Call {
        name: String,
        #[serde(skip)]
        name_span: Span,
        args: Vec<Ast>,
    },
    /// A call whose function [`check`] has resolved.
    Func(Func, Vec<Ast>),
}

/// The functions of the language. Base-wide functions aggregate over every
/// account in the cycle and broadcast the result back to each account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Func {
    Coalesce,
    NullIf,
    Greatest,
    Least,
    Abs,
    Ln,
    Log10,
    Sqrt,
    Power,
    Round,
    Floor,
    Ceil,
    Lower,
    Upper,
    DaysBetween,
    Quantile,
    Median,
    Mean,
    Sum,
    PercentRank,
    ParetoShare,
    CyclesSince,
}

impl Func {
    pub const ALL: [Func; 22] = [
        Func::Coalesce,
        Func::NullIf,
        Func::Greatest,
        Func::Least,
        Func::Abs,
        Func::Ln,
        Func::Log10,
        Func::Sqrt,
        Func::Power,
        Func::Round,
        Func::Floor,
        Func::Ceil,
        Func::Lower,
        Func::Upper,
        Func::DaysBetween,
        Func::Quantile,
        Func::Median,
        Func::Mean,
        Func::Sum,
        Func::PercentRank,
        Func::ParetoShare,
        Func::CyclesSince,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Func::Coalesce => "coalesce",
            Func::NullIf => "nullif",
            Func::Greatest => "greatest",
            Func::Least => "least",
            Func::Abs => "abs",
            Func::Ln => "ln",
            Func::Log10 => "log10",
            Func::Sqrt => "sqrt",
            Func::Power => "power",
            Func::Round => "round",
            Func::Floor => "floor",
            Func::Ceil => "ceil",
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::DaysBetween => "days_between",
            Func::Quantile => "quantile",
            Func::Median => "median",
            Func::Mean => "mean",
            Func::Sum => "sum",
            Func::PercentRank => "percent_rank",
            Func::ParetoShare => "pareto_share",
            Func::CyclesSince => "cycles_since",
        }
    }

    pub fn from_name(name: &str) -> Option<Func> {
        let lower = name.to_ascii_lowercase();
        let lower = if lower == "ceiling" { "ceil".to_string() } else { lower };
        Func::ALL.into_iter().find(|f| f.name() == lower)
    }

    /// Computed over all accounts in the cycle rather than row by row.
    pub fn is_base_wide(self) -> bool {
        matches!(
            self,
            Func::Quantile | Func::Median | Func::Mean | Func::Sum | Func::PercentRank | Func::ParetoShare
        )
    }
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i32> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    Some((date - epoch).num_days() as i32)
}

impl Ast {
    pub fn new(kind: Kind, span: Span) -> Self {
        Ast { kind, span }
    }

    fn binary(op: BinOp, left: Ast, right: Ast) -> Self {
        let span = Span::new(left.span.start, right.span.end);
        Ast::new(Kind::Binary(op, Box::new(left), Box::new(right)), span)
    }

    /// The columns this expression reads, in order of first use.
    pub fn columns(&self) -> Vec<String> {
        self.names(|kind| match kind {
            Kind::Column(name) => Some(name),
            _ => None,
        })
    }

    /// The snapshot columns this expression reads through `prev(...)`.
    pub fn previous(&self) -> Vec<String> {
        self.names(|kind| match kind {
            Kind::Prev(name) => Some(name),
            _ => None,
        })
    }

    /// The distinct names `pick` finds in the tree, in order of first use.
    fn names(&self, pick: impl Fn(&Kind) -> Option<&String>) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |ast| {
            if let Some(name) = pick(&ast.kind)
                && !out.contains(name)
            {
                out.push(name.clone());
            }
        });
        out
    }

    /// Calls `f` on this node and every node below it.
    pub fn walk(&self, f: &mut impl FnMut(&Ast)) {
        f(self);
        for child in self.children() {
            child.walk(f);
        }
    }

    /// The nodes directly below this one, in order.
    pub fn children(&self) -> Vec<&Ast> {
        match &self.kind {
            Kind::Neg(e) | Kind::Not(e) | Kind::IsNull { expr: e, .. } => vec![e],
            Kind::Binary(_, l, r) => vec![l, r],
            Kind::Between { expr, low, high, .. } => vec![expr, low, high],
            Kind::InList { expr, list, .. } => std::iter::once(&**expr).chain(list).collect(),
            Kind::Case {
                operand,
                whens,
                otherwise,
            } => operand
                .iter()
                .map(|o| &**o)
                .chain(whens.iter().flat_map(|(c, r)| [c, r]))
                .chain(otherwise.iter().map(|o| &**o))
                .collect(),
            Kind::Call { args, .. } | Kind::Func(_, args) => args.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The conditions an `AND`/`OR`/`NOT` tree is built from: what `explain`
    /// shows to say why a rule did or did not match.
    /// The base-wide function calls in this tree (`quantile(arr, 0.5)`),
    /// outermost first: what an explanation shows the value of.
    pub fn base_wide_calls(&self) -> Vec<&Ast> {
        match &self.kind {
            Kind::Func(f, _) if f.is_base_wide() => vec![self],
            _ => self.children().into_iter().flat_map(|c| c.base_wide_calls()).collect(),
        }
    }

    pub fn conditions(&self) -> Vec<&Ast> {
        match &self.kind {
            Kind::Binary(BinOp::And | BinOp::Or, l, r) => {
                let mut out = l.conditions();
                out.extend(r.conditions());
                out
            }
            Kind::Not(e) => e.conditions(),
            _ => vec![self],
        }
    }
}

/// Renders the tree with full parentheses, so that its structure is visible.
impl fmt::Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: &[Ast]| -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{item}")?;
            }
            Ok(())
        };
        match &self.kind {
            Kind::Int(v) => write!(f, "{v}"),
            Kind::Num(v) => write!(f, "{v}"),
            Kind::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Kind::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Kind::Date(d) => {
                let date =
                    chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid") + chrono::Duration::days(*d as i64);
                write!(f, "DATE '{date}'")
            }
            Kind::Null => write!(f, "NULL"),
            Kind::Name(n) | Kind::Column(n) => {
                if n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    write!(f, "{n}")
                } else {
                    write!(f, "\"{}\"", n.replace('"', "\"\""))
                }
            }
            Kind::AsOf => write!(f, "as_of"),
            Kind::Prev(n) => write!(f, "prev({n})"),
            Kind::Neg(e) => write!(f, "(-{e})"),
            Kind::Not(e) => write!(f, "(NOT {e})"),
            Kind::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Kind::IsNull { expr, negated } => {
                write!(f, "({expr} IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            Kind::Between {
                expr,
                low,
                high,
                negated,
            } => write!(
                f,
                "({expr} {}BETWEEN {low} AND {high})",
                if *negated { "NOT " } else { "" }
            ),
            Kind::InList {
                expr,
                list: items,
                negated,
            } => {
                write!(f, "({expr} {}IN (", if *negated { "NOT " } else { "" })?;
                list(f, items)?;
                write!(f, "))")
            }
            Kind::Case {
                operand,
                whens,
                otherwise,
            } => {
                write!(f, "CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (c, r) in whens {
                    write!(f, " WHEN {c} THEN {r}")?;
                }
                if let Some(o) = otherwise {
                    write!(f, " ELSE {o}")?;
                }
                write!(f, " END")
            }
            Kind::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                list(f, args)?;
                write!(f, ")")
            }
            Kind::Func(func, args) => {
                write!(f, "{}(", func.name())?;
                list(f, args)?;
                write!(f, ")")
            }
        }
    }
}
