using SmpRobot.Contracts.V1;

namespace SmpRobot.Machine;

/// <summary>
/// One broken plan rule. <paramref name="DotId"/> is the offending dot's id, "#n" (1-based position
/// in the file) when the dot's id is missing or malformed, and "" for plan-level rules.
/// <paramref name="Rule"/> is a stable name ("depth-range", "min-spacing", ...); <paramref name="Message"/>
/// explains it with values and units.
/// </summary>
public sealed record PlanRuleViolation(string DotId, string Rule, string Message);

/// <summary>
/// Outcome of parsing and/or validating a plan. <paramref name="Plan"/> is null when the file could not
/// be parsed. <paramref name="Violations"/> lists at most <see cref="PlanValidator.MaxListedViolations"/>
/// violations (plan-level first, then in dot order); <paramref name="TotalViolations"/> counts all of them.
/// </summary>
public sealed record PlanValidationResult(Plan? Plan, IReadOnlyList<PlanRuleViolation> Violations, int TotalViolations)
{
    /// <summary>True when the plan parsed and broke no rule.</summary>
    public bool IsValid => TotalViolations == 0 && Plan is not null;

    internal static PlanValidationResult Failed(string rule, string message) =>
        new(null, [new PlanRuleViolation("", rule, message)], 1);
}
