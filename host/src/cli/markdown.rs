//! `roster plan --format markdown`: the plan as a change-approval ticket
//! reads it (a summary, the changes by kind, what needs attention, what is
//! left alone), for reviewers who do not run the CLI. Tables are GitHub
//! flavoured; every cell is escaped, so an address or a vendor's message
//! cannot break the table.

use super::render::details;
use crate::plan::{Action, NoteLevel, Plan};
use std::fmt::Write;

/// The plan as Markdown.
pub fn plan(plan: &Plan) -> String {
    let mut md = String::new();
    let s = &plan.summary;
    let _ = writeln!(
        md,
        "# Plan `{}` for `{}`\n\n{} → {}: {} source accounts, {} in scope, {} target accounts.\n",
        plan.id,
        plan.pipeline,
        plan.source,
        plan.target,
        s.source_accounts,
        s.in_scope,
        s.target_accounts
    );
    if let Some(r) = &plan.refused {
        let _ = writeln!(md, "> **Refused:** {}\n", cell(r));
    }
    let _ = writeln!(md, "| change | count |\n|---|---:|");
    for (label, n) in [
        ("create", s.creates),
        ("update", s.updates),
        ("guest merge", s.merges),
        ("disable", s.disables),
        ("delete", s.deletes),
        ("new link", s.new_links),
        ("unlink", s.unlinks),
        ("unchanged", s.unchanged),
        ("skipped", s.skipped),
        ("filtered", s.filtered),
    ] {
        let _ = writeln!(md, "| {label} | {n} |");
    }
    md.push('\n');
    notes(&mut md, plan);
    for action in [
        Action::MergeGuest,
        Action::Create,
        Action::Update,
        Action::Disable,
        Action::Delete,
    ] {
        let changes: Vec<_> = plan.changes.iter().filter(|c| c.action == action).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "## {} ({})\n\n| account | details |\n|---|---|",
            action.as_str(),
            changes.len()
        );
        for c in changes {
            let _ = writeln!(md, "| {} | {} |", cell(&c.email), cell(&details(c)));
        }
        md.push('\n');
    }
    if !plan.unlinks.is_empty() {
        let _ = writeln!(
            md,
            "## unlink ({})\n\n| account | target id |\n|---|---|",
            plan.unlinks.len()
        );
        for u in &plan.unlinks {
            let id = u.target_id.as_deref().unwrap_or("-");
            let _ = writeln!(md, "| {} | {} |", cell(&u.source_email), cell(id));
        }
        md.push('\n');
    }
    if !plan.skipped.is_empty() {
        let _ = writeln!(
            md,
            "## Left alone ({})\n\n| account | reason | why |\n|---|---|---|",
            plan.skipped.len()
        );
        for k in &plan.skipped {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                cell(&k.account),
                cell(&k.count_key()),
                cell(&k.detail)
            );
        }
        md.push('\n');
    }
    if plan.is_empty() {
        let _ = writeln!(md, "No changes: {} accounts in sync.", s.unchanged);
    }
    md
}

fn notes(md: &mut String, plan: &Plan) {
    for (level, title) in NoteLevel::ALL
        .into_iter()
        .zip(["Errors", "Conflicts", "Warnings"])
    {
        let notes = plan.notes_at(level);
        if notes.is_empty() {
            continue;
        }
        let _ = writeln!(md, "## {title} ({})\n", notes.len());
        for n in notes {
            let account = n.account.as_deref().unwrap_or("-");
            let _ = writeln!(
                md,
                "- `{}`: {}",
                account.replace('`', "'"),
                cell(&n.message)
            );
        }
        md.push('\n');
    }
}

/// Text safe in a table cell: no pipe, no line break, no HTML.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push_str("<br>"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc<script>"), "a\\|b<br>c&lt;script&gt;");
    }
}
