//! `[http] charts_token` (issue 14, part 4): the bearer token of `/charts/*`, read from
//! the environment like every secret; absent, the chart routes are off.

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused_at, env_all, parse, GOOD};

    fn with_http(lines: &str) -> String {
        format!("{GOOD}\n[http]\n{lines}\n")
    }

    #[test]
    fn the_token_comes_from_the_environment_and_is_off_when_absent() {
        let c = parse(&with_http("charts_token = \"${CHARTS_TOKEN}\""), &env_all).unwrap();
        assert_eq!(
            c.charts_token.as_ref().map(|s| s.expose().to_string()),
            Some("value-of-CHARTS_TOKEN".to_string())
        );
        assert!(parse(GOOD, &env_all).unwrap().charts_token.is_none());
        assert!(parse(&with_http(""), &env_all)
            .unwrap()
            .charts_token
            .is_none());
    }

    #[test]
    fn a_literal_token_is_refused_at_its_line() {
        let text = with_http("charts_token = \"hunter2\"");
        assert_refused_at(
            &text,
            "charts_token = \"hunter2\"",
            "http.charts_token",
            "secrets must come from the environment",
        );
    }
}
