namespace SmpRobot.Treatment.Design;

/// <summary>
/// One broken design rule, in the style of plan violations: <paramref name="Where"/> names the part of the
/// design ("design", "head", "hairline", "zone frontal", "scar strip", "exclusion mole-1", "sessions"),
/// <paramref name="Rule"/> is a stable name ("zone-self-intersecting", "mesh-hole", …) and
/// <paramref name="Message"/> explains it with values and units.
/// </summary>
public sealed record DesignViolation(string Where, string Rule, string Message)
{
    public override string ToString() => Where + "  " + Rule + "  " + Message;
}
