//! What an agent says about its session, gathered from its answers and updates: the slash
//! commands it takes, its modes, its models. Shown in the session's info for the editors.

use agent_client_protocol::v1::schema::{
    SessionConfigKind, SessionConfigOption, SessionConfigOptionCategory,
    SessionConfigSelectOptions, SessionModeState, SessionUpdate,
};

use crate::vocab::{AgentCommand, AgentFacts};

/// Takes in what a session's opening said: its modes and its config options.
pub fn opened(
    facts: &mut AgentFacts,
    modes: Option<&SessionModeState>,
    options: Option<&[SessionConfigOption]>,
) {
    if let Some(modes) = modes {
        facts.mode = Some(modes.current_mode_id.0.to_string());
        facts.modes = modes
            .available_modes
            .iter()
            .map(|mode| mode.id.0.to_string())
            .collect();
    }
    if let Some(options) = options {
        config_options(facts, options);
    }
}

/// Takes in one update; says whether the facts changed.
pub fn update(facts: &mut AgentFacts, update: &SessionUpdate) -> bool {
    let before = facts.clone();
    match update {
        SessionUpdate::AvailableCommandsUpdate(update) => {
            facts.commands = update
                .available_commands
                .iter()
                .map(|command| AgentCommand {
                    name: command.name.clone(),
                    description: command.description.clone(),
                })
                .collect();
        }
        SessionUpdate::CurrentModeUpdate(update) => {
            facts.mode = Some(update.current_mode_id.0.to_string());
        }
        SessionUpdate::ConfigOptionUpdate(update) => config_options(facts, &update.config_options),
        _ => {}
    }
    *facts != before
}

/// The model selector among `options`: its id and the values it offers.
pub fn model_option(options: &[SessionConfigOption]) -> Option<(String, String, Vec<String>)> {
    options.iter().find_map(|option| {
        if option.category != Some(SessionConfigOptionCategory::Model) {
            return None;
        }
        let SessionConfigKind::Select(select) = &option.kind else {
            return None;
        };
        let values = match &select.options {
            SessionConfigSelectOptions::Ungrouped(values) => values
                .iter()
                .map(|value| value.value.0.to_string())
                .collect(),
            SessionConfigSelectOptions::Grouped(groups) => groups
                .iter()
                .flat_map(|group| group.options.iter())
                .map(|value| value.value.0.to_string())
                .collect(),
            _ => Vec::new(),
        };
        Some((
            option.id.0.to_string(),
            select.current_value.0.to_string(),
            values,
        ))
    })
}

fn config_options(facts: &mut AgentFacts, options: &[SessionConfigOption]) {
    if let Some((_, current, values)) = model_option(options) {
        facts.model = Some(current);
        facts.models = values;
    }
}
