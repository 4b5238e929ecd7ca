//! Stand-in for the handshake branch's `ExtensionOffer` until it is merged (same fields and
//! methods, so the switch is one `use` line).

/// One extension with its parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExtensionOffer {
    /// The extension's token.
    pub name: String,
    /// Its parameters in order.
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// An extension without parameters.
    pub fn new(name: impl Into<String>) -> ExtensionOffer {
        ExtensionOffer {
            name: name.into(),
            params: Vec::new(),
        }
    }

    /// Appends a parameter.
    pub fn with_param(mut self, name: impl Into<String>, value: Option<&str>) -> ExtensionOffer {
        self.params.push((name.into(), value.map(str::to_owned)));
        self
    }

    /// The first parameter called `name`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}
