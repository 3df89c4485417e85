//! The admin page: plain HTML, CSS and vanilla JavaScript compiled into the binary, so there is
//! no build step, nothing to install beside it, and nothing fetched from elsewhere.

/// `GET /`.
pub const INDEX_HTML: &str = include_str!("page/index.html");

/// `GET /style.css`.
pub const STYLE_CSS: &str = include_str!("page/style.css");

/// `GET /app.js`.
pub const APP_JS: &str = include_str!("page/app.js");
