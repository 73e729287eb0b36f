//! Settings of the HTTPS API (kubelet's --address, --tls-*, --client-ca-file, authentication
//! and authorization flags), resolved from flags and the config file.

use std::net::IpAddr;
use std::path::PathBuf;

use super::ConfigError;
use super::file::FileConfig;
use super::flags::Flags;

/// How requests to the HTTPS API are authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// SubjectAccessReview against the apiserver (kubelet's Webhook).
    Webhook,
    /// Every authenticated request is allowed.
    AlwaysAllow,
}

/// The resolved server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: IpAddr,
    /// None: a self-signed certificate is generated under ROOT_DIR/pki, as kubelet does.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// CA that signs client certificates (the apiserver's kubelet client cert). None: client
    /// certificates are not accepted.
    pub client_ca_file: Option<PathBuf>,
    pub anonymous_auth: bool,
    pub authentication_token_webhook: bool,
    pub authorization_mode: AuthorizationMode,
    /// Idle exec / attach / port-forward streams are closed after this long (kubelet's
    /// --streaming-connection-idle-timeout, 4h by default).
    pub streaming_connection_idle_timeout: std::time::Duration,
}

/// kubelet's default --streaming-connection-idle-timeout.
pub const DEFAULT_STREAMING_CONNECTION_IDLE_TIMEOUT: &str = "4h";

fn invalid(setting: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { setting, message }
}

/// Resolves the server settings: flags win over the file, then kubelet's defaults, except
/// that the address defaults to 127.0.0.1 and anonymous requests are refused (401).
pub fn resolve(flags: &Flags, file: &FileConfig) -> Result<ServerConfig, ConfigError> {
    let address = flags
        .address
        .clone()
        .or(file.address.clone())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    let address = address
        .parse::<IpAddr>()
        .map_err(|_| invalid("--address", format!("{address:?} is not an IP address")))?;
    let tls_cert_file = flags.tls_cert_file.clone().or(file.tls_cert_file.clone());
    let tls_private_key_file = flags
        .tls_private_key_file
        .clone()
        .or(file.tls_private_key_file.clone());
    if tls_cert_file.is_some() != tls_private_key_file.is_some() {
        return Err(invalid(
            "--tls-cert-file",
            "--tls-cert-file and --tls-private-key-file go together".into(),
        ));
    }
    let mode = flags
        .authorization_mode
        .clone()
        .or(file.authorization_mode.clone())
        .unwrap_or_else(|| "Webhook".to_string());
    let authorization_mode = match mode.as_str() {
        "Webhook" => AuthorizationMode::Webhook,
        "AlwaysAllow" => AuthorizationMode::AlwaysAllow,
        other => {
            return Err(invalid(
                "--authorization-mode",
                format!("{other:?} (expected Webhook or AlwaysAllow)"),
            ));
        }
    };
    let idle = flags
        .streaming_connection_idle_timeout
        .clone()
        .or(file.streaming_connection_idle_timeout.clone())
        .unwrap_or_else(|| DEFAULT_STREAMING_CONNECTION_IDLE_TIMEOUT.to_string());
    let streaming_connection_idle_timeout = super::parse::parse_duration(&idle)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            invalid(
                "--streaming-connection-idle-timeout",
                format!("{idle:?} is not a positive duration"),
            )
        })?;
    Ok(ServerConfig {
        address,
        streaming_connection_idle_timeout,
        tls_cert_file,
        tls_private_key_file,
        client_ca_file: flags.client_ca_file.clone().or(file.client_ca_file.clone()),
        anonymous_auth: flags
            .anonymous_auth
            .or(file.anonymous_auth)
            .unwrap_or(false),
        authentication_token_webhook: flags
            .authentication_token_webhook
            .or(file.authentication_token_webhook)
            .unwrap_or(true),
        authorization_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_webhook_and_no_anonymous() {
        let c = resolve(&Flags::default(), &FileConfig::default()).unwrap();
        assert_eq!(c.address.to_string(), "127.0.0.1");
        assert!(!c.anonymous_auth);
        assert!(c.authentication_token_webhook);
        assert_eq!(c.authorization_mode, AuthorizationMode::Webhook);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let flags = Flags {
            authorization_mode: Some("RBAC".into()),
            ..Flags::default()
        };
        let e = resolve(&flags, &FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("--authorization-mode"), "{e}");
        let flags = Flags {
            tls_cert_file: Some("/c".into()),
            ..Flags::default()
        };
        assert!(resolve(&flags, &FileConfig::default()).is_err());
    }
}
