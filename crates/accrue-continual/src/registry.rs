//! Methods by name: the registry that turns an experiment file's `strategy = { kind = … }` into
//! a [`Strategy`] the trainer runs.
//!
//! Every method, shipped or a user's, is built through a [`Registry`]: [`Registry::builtin`]
//! holds the paper's methods (`finetune`, `lwf`, `cassle`, `modx`, `frozen_adapter`,
//! `multitask`, `combined`); a user adds their own with [`Registry::register`] and hands the
//! registry to [`crate::Experiment`]:
//!
//! ```ignore
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Options { #[serde(default)] weight: f64 }
//!
//! let mut registry = Registry::builtin();
//! registry.register("feature_l2", |spec: &MethodSpec| {
//!     let o: Options = spec.options()?; // unknown keys: an error naming the key and its line
//!     Ok(FeatureL2::new(o.weight))
//! })?;
//! let config = ExperimentConfig::load_with(path, &registry)?;
//! Experiment::new(config).registry(registry).run(false)?;
//! ```
//!
//! A method's options are the rest of its table: `{ kind = "lwf", temperature = 2.0 }` gives
//! `lwf` the options `{ temperature = 2.0 }`. [`MethodSpec::options`] deserialises them into
//! the method's own type; an unknown key is reported with the key and its line in the file.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{ContinualError, Result};
use crate::model::Student;
use crate::strategies::StrategyConfig;
use crate::strategy::Strategy;
use crate::trainer::StageRunner;

/// A method as an experiment names it: its `kind` and its options.
#[derive(Clone, Debug)]
pub struct MethodSpec {
    /// The registered name (`"lwf"`, `"feature_l2"`, …).
    pub kind: String,
    /// The rest of the table.
    pub options: Map<String, Value>,
    /// Where the table is written in its experiment file, for error messages.
    origin: Option<Arc<Origin>>,
}

/// The text of a method's table in its file and the line it starts on.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    line: usize,
    text: String,
}

impl PartialEq for MethodSpec {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.options == other.options
    }
}

impl MethodSpec {
    /// A method without options.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            options: Map::new(),
            origin: None,
        }
    }

    /// Adds an option.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.options.insert(key.to_string(), value.into());
        self
    }

    /// Records where the table is written (`text` starting on `line` of its file), so that
    /// option errors name the line. Set by [`crate::ExperimentConfig::parse`].
    pub(crate) fn set_origin(&mut self, line: usize, text: &str) {
        self.origin = Some(Arc::new(Origin {
            line,
            text: text.to_string(),
        }));
    }

    /// The options deserialised into the method's own type (give it
    /// `#[serde(deny_unknown_fields)]` so that a typo is an error, not a silently ignored key).
    ///
    /// # Errors
    /// [`ContinualError::Method`] naming the kind, the offending key and its line.
    pub fn options<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(Value::Object(self.options.clone()))
            .map_err(|e| self.error(e.to_string()))
    }

    /// An error about this method, located at the line of the first key `message` names in
    /// backticks (serde's convention), or else at the line of the table.
    pub fn error(&self, message: impl Into<String>) -> ContinualError {
        let message = message.into();
        let line = self.origin.as_ref().map(|o| {
            let key = message.split('`').nth(1).unwrap_or("");
            let offset = (!key.is_empty())
                .then(|| find_key(&o.text, key))
                .flatten()
                .map_or(0, |at| o.text[..at].matches('\n').count());
            o.line + offset
        });
        ContinualError::Method {
            kind: self.kind.clone(),
            line,
            message,
        }
    }
}

/// Byte offset of `key` written as a TOML key (`key =` or `"key" =`) in `text`.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(key) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + key.len()..].trim_start_matches('"').trim_start();
        let starts = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if starts && after.starts_with('=') {
            return Some(at);
        }
        from = at + key.len();
    }
    None
}

impl Default for MethodSpec {
    /// Fine-tuning, the default of a stage without `strategy`.
    fn default() -> Self {
        Self::new("finetune")
    }
}

impl Serialize for MethodSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = Map::new();
        map.insert("kind".into(), Value::String(self.kind.clone()));
        map.extend(self.options.clone());
        map.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MethodSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut map = Map::<String, Value>::deserialize(d)?;
        match map.remove("kind") {
            Some(Value::String(kind)) => Ok(Self {
                kind,
                options: map,
                origin: None,
            }),
            Some(_) => Err(serde::de::Error::custom("`kind` must be a string")),
            None => Err(serde::de::Error::missing_field("kind")),
        }
    }
}

/// A method ready to train one stage: any [`Strategy`], its type erased so that a registry can
/// hold methods of different types. Implemented for every `Strategy + Send + Sync + 'static`;
/// there is nothing to implement by hand.
pub trait Method: Send {
    /// The method's name ([`Strategy::name`]).
    fn method_name(&self) -> String;

    /// Trains one stage with this method (the trainer's generic stage loop, monomorphised for
    /// the method's type).
    ///
    /// # Errors
    /// As the stage loop.
    #[doc(hidden)]
    fn train_stage(
        self: Box<Self>,
        runner: &mut StageRunner<'_>,
        student: Student,
    ) -> Result<Student>;
}

impl<S> Method for S
where
    S: Strategy + Send + Sync + 'static,
    S::Aux: Send,
{
    fn method_name(&self) -> String {
        self.name()
    }

    fn train_stage(
        self: Box<Self>,
        runner: &mut StageRunner<'_>,
        student: Student,
    ) -> Result<Student> {
        runner.run(*self, student)
    }
}

type Constructor = Arc<dyn Fn(&MethodSpec) -> Result<Box<dyn Method>> + Send + Sync>;

/// Method constructors by `kind`. See the [module documentation](self).
#[derive(Clone, Default)]
pub struct Registry {
    makers: BTreeMap<String, Constructor>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

/// The kinds of [`Registry::builtin`].
pub const BUILTIN_KINDS: [&str; 7] = [
    "finetune",
    "lwf",
    "cassle",
    "modx",
    "frozen_adapter",
    "multitask",
    "combined",
];

impl Registry {
    /// A registry without methods.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The shipped methods: [`BUILTIN_KINDS`]. Each is built from its options by
    /// [`StrategyConfig`] (so `combined` composes shipped methods; compose your own in code
    /// with [`crate::strategies::Combined`]).
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        for kind in BUILTIN_KINDS {
            let maker: Constructor = Arc::new(|spec: &MethodSpec| {
                let config: StrategyConfig = serde_json::from_value(Value::Object({
                    let mut m = spec.options.clone();
                    m.insert("kind".into(), Value::String(spec.kind.clone()));
                    m
                }))
                .map_err(|e| spec.error(e.to_string()))?;
                let built = config.build().map_err(|e| spec.error(e.to_string()))?;
                Ok(Box::new(built) as Box<dyn Method>)
            });
            r.makers.insert(kind.to_string(), maker);
        }
        r
    }

    /// Registers `kind`, built by `make` from its [`MethodSpec`] (usually
    /// `spec.options::<MyOptions>()` then a constructor).
    ///
    /// # Errors
    /// `kind` is already registered (a shipped method cannot be replaced silently).
    pub fn register<S, F>(&mut self, kind: &str, make: F) -> Result<&mut Self>
    where
        S: Strategy + Send + Sync + 'static,
        S::Aux: Send,
        F: Fn(&MethodSpec) -> Result<S> + Send + Sync + 'static,
    {
        if self.makers.contains_key(kind) {
            return Err(ContinualError::Config(format!(
                "method kind `{kind}` is already registered"
            )));
        }
        self.makers.insert(
            kind.to_string(),
            Arc::new(move |spec: &MethodSpec| Ok(Box::new(make(spec)?) as Box<dyn Method>)),
        );
        Ok(self)
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.makers.keys().cloned().collect()
    }

    /// Whether `kind` is registered.
    pub fn contains(&self, kind: &str) -> bool {
        self.makers.contains_key(kind)
    }

    /// Builds the method `spec` names.
    ///
    /// # Errors
    /// An unknown kind (the known ones are listed), or the constructor's error.
    pub fn build(&self, spec: &MethodSpec) -> Result<Box<dyn Method>> {
        let make = self.makers.get(&spec.kind).ok_or_else(|| {
            spec.error(format!(
                "unknown method kind (registered: {}); register it with `Registry::register`",
                self.kinds().join(", ")
            ))
        })?;
        make(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_option_keys_are_located_on_their_line() {
        let mut spec = MethodSpec::new("lwf").with("temprature", 1.0);
        spec.set_origin(7, "{ kind = \"lwf\",\n  temprature = 1.0 }");
        let err = Registry::builtin().build(&spec).err().expect("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("temprature") && msg.contains("line 8"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_kinds_list_the_registered_ones() {
        let err = Registry::builtin()
            .build(&MethodSpec::new("ewc"))
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains("ewc") && msg.contains("lwf, modx"), "{msg}");
    }

    #[test]
    fn builtin_kinds_build_with_their_names() {
        let r = Registry::builtin();
        for kind in BUILTIN_KINDS {
            let spec = match kind {
                "combined" => MethodSpec::new(kind).with(
                    "parts",
                    serde_json::json!([{ "weight": 1.0, "strategy": { "kind": "lwf" } }]),
                ),
                _ => MethodSpec::new(kind),
            };
            let m = r.build(&spec).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(!m.method_name().is_empty());
        }
        let mut r = r;
        let again = r.register("lwf", |_| Ok(crate::strategies::FineTune));
        assert!(again.is_err(), "a shipped kind cannot be replaced");
    }

    #[test]
    fn specs_round_trip_through_serde() {
        let spec = MethodSpec::new("cassle").with("hidden", 32);
        let json = serde_json::to_string(&spec).expect("ser");
        assert!(json.contains("\"kind\":\"cassle\""), "{json}");
        let back: MethodSpec = serde_json::from_str(&json).expect("de");
        assert_eq!(back, spec);
        assert!(serde_json::from_str::<MethodSpec>("{\"hidden\": 3}").is_err());
    }

    #[test]
    fn keys_are_found_as_keys_only() {
        assert_eq!(find_key("{ a_tau = 1, tau = 2 }", "tau"), Some(13));
        assert_eq!(find_key("{ \"tau\" = 2 }", "tau"), Some(3));
        assert_eq!(find_key("{ tau2 = 2 }", "tau"), None);
    }
}
