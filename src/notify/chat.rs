//! The chat formats: a notification's facts as a ready Slack message or Microsoft Teams
//! Adaptive Card, for endpoints that show rather than parse.

use serde::Serialize;

use super::payload::Notification;

/// The one-line summary: `OneTimeShare team-a/db: Received (reason Received)`.
fn headline(n: &Notification) -> String {
    format!(
        "OneTimeShare {}: {} (reason {})",
        n.subject(),
        n.event.as_str(),
        n.reason.as_str()
    )
}

/// The notification's facts as (label, text) pairs, absent times left out.
pub fn facts(n: &Notification) -> Vec<(&'static str, String)> {
    let mut facts = vec![
        ("Share", n.subject()),
        ("Event", n.event.as_str().to_owned()),
        ("Reason", n.reason.as_str().to_owned()),
        ("At", n.at.to_string()),
    ];
    for (label, time) in [
        ("Shared at", n.shared_at),
        ("Expires at", n.expires_at),
        ("Received at", n.received_at),
        ("Burned at", n.burned_at),
        ("Expired at", n.expired_at),
    ] {
        if let Some(time) = time {
            facts.push((label, time.to_string()));
        }
    }
    if let Some(url) = &n.server_url {
        facts.push(("Server", url.clone()));
    }
    facts
}

/// A Slack incoming-webhook message: `text` for notifications, `blocks` for the channel.
#[derive(Debug, Serialize)]
pub struct SlackMessage {
    text: String,
    blocks: Vec<SlackBlock>,
}

#[derive(Debug, Serialize)]
struct SlackBlock {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<SlackText>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<SlackText>,
}

#[derive(Debug, Serialize)]
struct SlackText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions); text must escape them.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack allows at most 10 fields in a section block.
const SLACK_FIELDS_PER_SECTION: usize = 10;

/// The notification as a Slack message.
pub fn slack(n: &Notification) -> SlackMessage {
    let headline = slack_escape(&headline(n));
    let mut blocks = vec![SlackBlock {
        kind: "section",
        text: Some(SlackText {
            kind: "mrkdwn",
            text: format!("*{headline}*"),
        }),
        fields: Vec::new(),
    }];
    let fields: Vec<SlackText> = facts(n)
        .into_iter()
        .map(|(label, text)| SlackText {
            kind: "mrkdwn",
            text: format!("*{label}*\n{}", slack_escape(&text)),
        })
        .collect();
    let mut fields = fields.into_iter().peekable();
    while fields.peek().is_some() {
        blocks.push(SlackBlock {
            kind: "section",
            text: None,
            fields: fields.by_ref().take(SLACK_FIELDS_PER_SECTION).collect(),
        });
    }
    SlackMessage {
        text: headline,
        blocks,
    }
}

/// A Teams incoming-webhook message holding one Adaptive Card.
#[derive(Debug, Serialize)]
pub struct TeamsMessage {
    #[serde(rename = "type")]
    kind: &'static str,
    attachments: [TeamsAttachment; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TeamsAttachment {
    content_type: &'static str,
    content: AdaptiveCard,
}

#[derive(Debug, Serialize)]
struct AdaptiveCard {
    #[serde(rename = "$schema")]
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    version: &'static str,
    body: Vec<CardElement>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type")]
enum CardElement {
    TextBlock {
        text: String,
        weight: &'static str,
        wrap: bool,
    },
    FactSet {
        facts: Vec<Fact>,
    },
}

#[derive(Debug, Serialize)]
struct Fact {
    title: &'static str,
    value: String,
}

/// The notification as a Teams message (Adaptive Card 1.4: a TextBlock and a FactSet).
pub fn teams(n: &Notification) -> TeamsMessage {
    let facts = facts(n)
        .into_iter()
        .map(|(title, value)| Fact { title, value })
        .collect();
    TeamsMessage {
        kind: "message",
        attachments: [TeamsAttachment {
            content_type: "application/vnd.microsoft.card.adaptive",
            content: AdaptiveCard {
                schema: "http://adaptivecards.io/schemas/adaptive-card.json",
                kind: "AdaptiveCard",
                version: "1.4",
                body: vec![
                    CardElement::TextBlock {
                        text: headline(n),
                        weight: "Bolder",
                        wrap: true,
                    },
                    CardElement::FactSet { facts },
                ],
            },
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::payload::Format;
    use crate::notify::payload::tests::received;
    use serde_json::{Value, json};

    fn body(format: Format) -> Value {
        let n = received();
        let id = n.delivery_id("notif-uid");
        serde_json::from_slice(&n.body(format, &id).unwrap()).unwrap()
    }

    #[test]
    fn slack_message_has_text_and_a_section_of_facts() {
        assert_eq!(
            body(Format::Slack),
            json!({
                "text": "OneTimeShare team-a/db-password: Received (reason Received)",
                "blocks": [
                    { "type": "section", "text": { "type": "mrkdwn",
                        "text": "*OneTimeShare team-a/db-password: Received (reason Received)*" } },
                    { "type": "section", "fields": [
                        { "type": "mrkdwn", "text": "*Share*\nteam-a/db-password" },
                        { "type": "mrkdwn", "text": "*Event*\nReceived" },
                        { "type": "mrkdwn", "text": "*Reason*\nReceived" },
                        { "type": "mrkdwn", "text": "*At*\n2027-01-15T08:05:00Z" },
                        { "type": "mrkdwn", "text": "*Shared at*\n2027-01-15T08:00:00Z" },
                        { "type": "mrkdwn", "text": "*Expires at*\n2027-01-16T08:00:00Z" },
                        { "type": "mrkdwn", "text": "*Received at*\n2027-01-15T08:05:00Z" },
                        { "type": "mrkdwn", "text": "*Server*\nhttps://ots.example" }
                    ] }
                ]
            })
        );
    }

    #[test]
    fn slack_text_escapes_markup() {
        let mut n = received();
        n.server_url = Some("https://a.example/?x=<!channel>&y".into());
        let text = serde_json::to_string(&slack(&n)).unwrap();
        assert!(text.contains("&lt;!channel&gt;&amp;y"), "{text}");
        assert!(!text.contains("<!channel>"), "{text}");
    }

    #[test]
    fn teams_message_is_an_adaptive_card_with_a_fact_set() {
        let body = body(Format::MicrosoftTeams);
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(
            card["body"][0],
            json!({ "type": "TextBlock", "weight": "Bolder", "wrap": true,
                    "text": "OneTimeShare team-a/db-password: Received (reason Received)" })
        );
        assert_eq!(card["body"][1]["type"], "FactSet");
        assert_eq!(
            card["body"][1]["facts"][0],
            json!({ "title": "Share", "value": "team-a/db-password" })
        );
        assert_eq!(card["body"][1]["facts"].as_array().unwrap().len(), 8);
    }
}
