using System.Globalization;
using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;

namespace SmpRobot.Machine;

/// <summary>
/// Checks a plan against a machine profile. Rules (stable names): "units", "name", "empty-plan",
/// "max-dots", "id-missing", "id-format", "duplicate-id", "non-finite", "depth-range", "dwell-range",
/// "pigment-unknown", "min-spacing", "envelope". Every violation is counted; at most
/// <see cref="MaxListedViolations"/> are listed, plan-level ones first, then in dot order.
/// All work is linear in the number of dots (hash sets and a spatial grid), so a hostile plan cannot
/// make validation quadratic.
/// </summary>
public sealed class PlanValidator(MachineProfile profile)
{
    /// <summary>Most violations listed in a result; the total is always counted.</summary>
    public const int MaxListedViolations = 50;

    /// <summary>Longest plan name, characters.</summary>
    public const int MaxNameLength = 200;

    /// <summary>Longest dot id, characters (printable ASCII, no whitespace).</summary>
    public const int MaxIdLength = 64;

    // Beyond this distance from the head-frame origin a dot cannot be near any real envelope; such dots are
    // left out of the spacing grid (the envelope rule reports them) so grid cell indices stay small.
    private const double SpacingGridLimitMm = 1e6;

    private readonly MachineProfile _profile = profile ?? throw new ArgumentNullException(nameof(profile));

    /// <summary>Parses <paramref name="json"/> (limit: the profile's MaxPlanBytes), then validates it.</summary>
    public PlanValidationResult ValidateJson(string json)
    {
        var parsed = PlanLoader.Parse(json, _profile.MaxPlanBytes);
        return parsed.Plan is null ? parsed : Validate(parsed.Plan);
    }

    /// <summary>Applies every rule to <paramref name="plan"/>; see the class summary.</summary>
    public PlanValidationResult Validate(Plan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var sink = new Sink();

        if (plan.Units != "mm")
        {
            sink.Add("", "units", $"units are \"{Shorten(plan.Units)}\"; plans must be in \"mm\"");
        }
        if (plan.Name.Length > MaxNameLength)
        {
            sink.Add("", "name", Inv($"the plan name is {plan.Name.Length} characters; at most {MaxNameLength} are allowed"));
        }
        if (plan.Dots.Count == 0)
        {
            sink.Add("", "empty-plan", "the plan has no dots");
        }
        if (plan.Dots.Count > _profile.MaxDots)
        {
            sink.Add("", "max-dots", Inv($"the plan has {plan.Dots.Count} dots; machine {_profile.Name} accepts at most {_profile.MaxDots}"));
        }

        var needle = _profile.Needle;
        var pigments = new HashSet<string>(_profile.Pigments, StringComparer.Ordinal);
        var firstIndexById = new Dictionary<string, int>(plan.Dots.Count, StringComparer.Ordinal);
        var spacing = new SpacingGrid(_profile.MinDotSpacingMm);
        var headToGantry = _profile.FixedHead.ToTransform();
        var labels = new string[plan.Dots.Count];

        for (var i = 0; i < plan.Dots.Count; i++)
        {
            var dot = plan.Dots[i];
            var idOk = IsWellFormedId(dot.Id);
            var label = idOk ? dot.Id : Inv($"#{i + 1}");
            labels[i] = label;
            var who = idOk ? $"dot {dot.Id}" : Inv($"dot #{i + 1}");

            if (dot.Id.Length == 0)
            {
                sink.Add(label, "id-missing", $"{who}: id is missing");
            }
            else if (!idOk)
            {
                sink.Add(label, "id-format", $"{who}: id \"{Shorten(dot.Id)}\" must be 1-{MaxIdLength} printable ASCII characters without whitespace");
            }
            if (dot.Id.Length > 0)
            {
                if (firstIndexById.TryGetValue(dot.Id, out var first))
                {
                    sink.Add(label, "duplicate-id", Inv($"{who}: id \"{Shorten(dot.Id)}\" is already used by dot #{first + 1}"));
                }
                else
                {
                    firstIndexById.Add(dot.Id, i);
                }
            }

            var nonFinite = NonFiniteFields(dot);
            if (nonFinite.Count > 0)
            {
                // The numeric rules below need real numbers; one violation says which fields are wrong.
                sink.Add(label, "non-finite", $"{who}: {string.Join(", ", nonFinite)} must be finite numbers");
            }
            else
            {
                if (!(dot.DepthMm >= needle.MinDepthMm && dot.DepthMm <= needle.MaxDepthMm))
                {
                    sink.Add(label, "depth-range", Inv($"{who}: depth {dot.DepthMm:0.00} mm is outside the needle limits {needle.MinDepthMm:0.00}-{needle.MaxDepthMm:0.00} mm"));
                }
                if (!(dot.DwellMs >= needle.MinDwellMs && dot.DwellMs <= needle.MaxDwellMs))
                {
                    sink.Add(label, "dwell-range", Inv($"{who}: dwell {dot.DwellMs:0.#} ms is outside the dwell limits {needle.MinDwellMs:0.#}-{needle.MaxDwellMs:0.#} ms"));
                }
            }

            if (!pigments.Contains(dot.PigmentId))
            {
                sink.Add(label, "pigment-unknown", $"{who}: pigment \"{Shorten(dot.PigmentId)}\" is not loaded on machine {_profile.Name} (loaded: {string.Join(", ", _profile.Pigments)})");
            }

            if (nonFinite.Count == 0)
            {
                if (Math.Abs(dot.XMm) <= SpacingGridLimitMm && Math.Abs(dot.YMm) <= SpacingGridLimitMm)
                {
                    var conflict = spacing.AddOrFindConflict(i, dot.XMm, dot.YMm, out var distanceMm);
                    if (conflict >= 0)
                    {
                        sink.Add(label, "min-spacing", Inv($"{who}: {distanceMm:0.00} mm from dot {labels[conflict]} (XY, head frame); the minimum spacing is {_profile.MinDotSpacingMm:0.00} mm"));
                    }
                }
                CheckEnvelope(sink, label, who, dot, headToGantry);
            }
        }

        return new PlanValidationResult(plan, sink.Listed, sink.Total);
    }

    private void CheckEnvelope(Sink sink, string label, string who, Dot dot, RigidTransform headToGantry)
    {
        var hover = headToGantry.Apply(new Vec3(dot.XMm, dot.YMm, dot.ZMm + _profile.HoverHeightMm));
        var depth = headToGantry.Apply(new Vec3(dot.XMm, dot.YMm, dot.ZMm - dot.DepthMm));
        var hoverOk = _profile.InEnvelope(hover);
        var depthOk = _profile.InEnvelope(depth);
        if (hoverOk && depthOk)
        {
            return;
        }
        var where = (hoverOk, depthOk) switch
        {
            (false, false) => $"at hover height {hover} and at depth {depth}",
            (false, true) => $"at hover height {hover}",
            _ => $"at depth {depth}",
        };
        sink.Add(label, "envelope", Inv($"{who}: gantry target {where} mm is outside the envelope ({_profile.EnvelopeText()})"));
    }

    /// <summary>1..64 printable ASCII characters (0x21-0x7E), so no whitespace and no control characters.</summary>
    internal static bool IsWellFormedId(string id)
    {
        if (id.Length is 0 or > MaxIdLength)
        {
            return false;
        }
        foreach (var c in id)
        {
            if (c is < '!' or > '~')
            {
                return false;
            }
        }
        return true;
    }

    private static List<string> NonFiniteFields(Dot dot)
    {
        var fields = new List<string>(0);
        Check(dot.XMm, "xMm");
        Check(dot.YMm, "yMm");
        Check(dot.ZMm, "zMm");
        Check(dot.DepthMm, "depthMm");
        Check(dot.DwellMs, "dwellMs");
        return fields;

        void Check(double value, string name)
        {
            if (!double.IsFinite(value))
            {
                fields.Add(Inv($"{name} ({value})"));
            }
        }
    }

    // Untrusted text goes into messages: keep it short and free of control characters.
    private static string Shorten(string text)
    {
        var clean = new string(text.Take(40).Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return text.Length > 40 ? clean + "…" : clean;
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private sealed class Sink
    {
        public List<PlanRuleViolation> Listed { get; } = [];

        public int Total { get; private set; }

        public void Add(string dotId, string rule, string message)
        {
            Total++;
            if (Listed.Count < MaxListedViolations)
            {
                Listed.Add(new PlanRuleViolation(dotId, rule, message));
            }
        }
    }

    /// <summary>
    /// Min-spacing check in linear time. Each dot is compared with the earlier dots that passed the check;
    /// a dot that fails is reported (naming the dot it is too close to) and kept out of the grid. Because
    /// the grid then only holds dots at least the spacing apart, a cell (side = spacing) holds at most a
    /// handful of dots, and each query is O(1) even for a plan of identical points. Removing every reported
    /// dot leaves a plan that satisfies the rule.
    /// </summary>
    private sealed class SpacingGrid(double minSpacingMm)
    {
        private readonly Dictionary<(long, long), List<(int Index, double X, double Y)>> _cells = [];

        public int AddOrFindConflict(int index, double xMm, double yMm, out double distanceMm)
        {
            var cx = (long)Math.Floor(xMm / minSpacingMm);
            var cy = (long)Math.Floor(yMm / minSpacingMm);
            var best = -1;
            distanceMm = double.PositiveInfinity;
            for (var dx = -1L; dx <= 1; dx++)
            {
                for (var dy = -1L; dy <= 1; dy++)
                {
                    if (!_cells.TryGetValue((cx + dx, cy + dy), out var cell))
                    {
                        continue;
                    }
                    foreach (var (other, ox, oy) in cell)
                    {
                        var d = Math.Sqrt(((xMm - ox) * (xMm - ox)) + ((yMm - oy) * (yMm - oy)));
                        if (d < minSpacingMm && (d < distanceMm || (d == distanceMm && other < best)))
                        {
                            best = other;
                            distanceMm = d;
                        }
                    }
                }
            }
            if (best < 0)
            {
                if (!_cells.TryGetValue((cx, cy), out var home))
                {
                    home = new List<(int, double, double)>(2);
                    _cells.Add((cx, cy), home);
                }
                home.Add((index, xMm, yMm));
            }
            return best;
        }
    }
}
