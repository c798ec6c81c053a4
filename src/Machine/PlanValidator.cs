using System.Globalization;
using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;

namespace SmpRobot.Machine;

/// <summary>
/// Checks a plan against a machine profile. Rules (stable names): "units", "name", "empty-plan",
/// "max-dots", "id-missing", "id-format", "duplicate-id", "non-finite", "depth-range", "dwell-range",
/// "pigment-unknown", "min-spacing", "envelope"; for plans made from designs also "patch-number",
/// "patch-unknown", "normal", "needle-tilt", "label" and "head-model". Every violation is counted; at most
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
        CheckHeadModel(sink, plan.Source);

        var needle = _profile.Needle;
        var pigments = new HashSet<string>(_profile.Pigments, StringComparer.Ordinal);
        var firstIndexById = new Dictionary<string, int>(plan.Dots.Count, StringComparer.Ordinal);
        // A plan with skin normals or head positions lies on a curved scalp: spacing is measured on the skin
        // (3-D), since the XY of a steep part of the head says little. A flat plan keeps XY in the head frame.
        var curved = plan.Patches.Count > 0 || plan.Dots.Any(HasNormal);
        var spacing = new SpacingGrid(_profile.MinDotSpacingMm, curved);
        var headToGantry = _profile.FixedHead.ToTransform();
        var patchPoses = PatchPoses(plan, sink);
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

            foreach (var (text, name) in new[] { (dot.Zone, "zone"), (dot.Layer, "layer"), (dot.Needle, "needle") })
            {
                if (text.Length > MaxLabelLength || text.Any(c => c is < ' ' or > '~'))
                {
                    sink.Add(label, "label", Inv($"{who}: {name} \"{Shorten(text)}\" must be at most {MaxLabelLength} printable ASCII characters"));
                }
            }

            if (nonFinite.Count == 0)
            {
                if (Math.Abs(dot.XMm) <= SpacingGridLimitMm && Math.Abs(dot.YMm) <= SpacingGridLimitMm && Math.Abs(dot.ZMm) <= SpacingGridLimitMm)
                {
                    var conflict = spacing.AddOrFindConflict(i, dot.XMm, dot.YMm, dot.ZMm, out var distanceMm);
                    if (conflict >= 0)
                    {
                        sink.Add(label, "min-spacing", Inv($"{who}: {distanceMm:0.00} mm from dot {labels[conflict]} ({(curved ? "on the skin" : "XY, head frame")}); the minimum spacing is {_profile.MinDotSpacingMm:0.00} mm"));
                    }
                }
                RigidTransform? patchPose = RigidTransform.Identity;
                if (dot.Patch > 0)
                {
                    patchPose = patchPoses.TryGetValue(dot.Patch, out var pose) ? pose : null;
                    if (patchPose is null) sink.Add(label, "patch-unknown", Inv($"{who}: patch {dot.Patch} is not one of the plan's patches ({(patchPoses.Count == 0 ? "it has none" : string.Join(", ", patchPoses.Keys.Order()))})"));
                }
                if (patchPose is { } headPose)
                {
                    var gantryFromHead = headToGantry * headPose;
                    CheckEnvelope(sink, label, who, dot, gantryFromHead);
                    if (HasNormal(dot)) CheckNormal(sink, label, who, dot, gantryFromHead);
                }
            }
        }

        return new PlanValidationResult(plan, sink.Listed, sink.Total);
    }

    /// <summary>Longest zone, layer or needle label, characters.</summary>
    public const int MaxLabelLength = 64;

    /// <summary>A dot carries a skin normal when any of its components is not zero.</summary>
    private static bool HasNormal(Dot dot) => dot.NormalX != 0 || dot.NormalY != 0 || dot.NormalZ != 0;

    /// <summary>The plan's patches by number, each head pose checked ("patch-number": numbers unique and positive, poses finite).</summary>
    private static Dictionary<uint, RigidTransform> PatchPoses(Plan plan, Sink sink)
    {
        var poses = new Dictionary<uint, RigidTransform>();
        foreach (var patch in plan.Patches)
        {
            var pose = patch.HeadPose ?? new FrameTransform();
            double[] values = [pose.RxDeg, pose.RyDeg, pose.RzDeg, pose.TxMm, pose.TyMm, pose.TzMm];
            if (patch.Number == 0 || poses.ContainsKey(patch.Number) || values.Any(v => !double.IsFinite(v)) || Math.Sqrt((pose.RxDeg * pose.RxDeg) + (pose.RyDeg * pose.RyDeg) + (pose.RzDeg * pose.RzDeg)) > 180)
            {
                sink.Add("", "patch-number", Inv($"patch {patch.Number}: patches need unique numbers from 1 and a finite head pose turning at most 180°"));
                continue;
            }
            poses.Add(patch.Number, Rotations.FromRotationVector(new Vec3(pose.RxDeg, pose.RyDeg, pose.RzDeg) * (Math.PI / 180), new Vec3(pose.TxMm, pose.TyMm, pose.TzMm)));
        }
        return poses;
    }

    /// <summary>Longest head model file name, characters.</summary>
    public const int MaxHeadModelFileLength = 255;

    /// <summary>
    /// "head-model": the plan's head model is named by a file (a relative path to a .ply, .obj or .stl beside the
    /// plan, as `smp design plan` writes it) and the SHA-256 of its bytes (64 lower-case hex digits), both or neither.
    /// </summary>
    private static void CheckHeadModel(Sink sink, PlanSource? source)
    {
        if (source is null) return;
        var file = source.HeadModelFile;
        var sha = source.HeadModelSha256;
        if (file.Length == 0 && sha.Length == 0) return;
        if (file.Length == 0 || sha.Length == 0)
        {
            sink.Add("", "head-model", "the plan's head model needs both its file (source.headModelFile) and its SHA-256 (source.headModelSha256)");
            return;
        }
        var extension = Path.GetExtension(file).ToLowerInvariant();
        if (file.Length > MaxHeadModelFileLength || file.Any(c => c is < ' ' or > '~') || Path.IsPathRooted(file) || extension is not (".ply" or ".obj" or ".stl"))
        {
            sink.Add("", "head-model", $"the head model file \"{Shorten(file)}\" must be a relative path of at most {MaxHeadModelFileLength} printable characters to a .ply, .obj or .stl file");
        }
        if (sha.Length != 64 || sha.Any(c => c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f'))))
        {
            sink.Add("", "head-model", $"the head model's SHA-256 \"{Shorten(sha)}\" must be 64 lower-case hex digits");
        }
    }

    /// <summary>A normal must be a unit vector ("normal"), and the needle along the machine's Z must meet it within the profile's tilt ("needle-tilt").</summary>
    private void CheckNormal(Sink sink, string label, string who, Dot dot, RigidTransform gantryFromHead)
    {
        var normal = new Vec3(dot.NormalX, dot.NormalY, dot.NormalZ);
        if (Math.Abs(normal.Length - 1) > 0.01)
        {
            sink.Add(label, "normal", Inv($"{who}: the skin normal {normal} has length {normal.Length:0.###}; it must be a unit vector"));
            return;
        }
        var inGantry = gantryFromHead.Apply(normal) - gantryFromHead.Translation;
        var tiltDeg = Math.Acos(Math.Clamp(inGantry.Z / inGantry.Length, -1, 1)) * 180 / Math.PI;
        if (tiltDeg > _profile.MaxNeedleTiltDeg + 1e-6)
        {
            sink.Add(label, "needle-tilt", Inv($"{who}: the needle meets the skin {tiltDeg:0.0}° off its normal{(dot.Patch > 0 ? $" in patch {dot.Patch}" : "")}; machine {_profile.Name} allows {_profile.MaxNeedleTiltDeg:0.#}° (maxNeedleTiltDeg): place it in a head position that faces the needle"));
        }
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
        Check(dot.NormalX, "normalX");
        Check(dot.NormalY, "normalY");
        Check(dot.NormalZ, "normalZ");
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
    private sealed class SpacingGrid(double minSpacingMm, bool threeD)
    {
        private readonly Dictionary<(long, long, long), List<(int Index, double X, double Y, double Z)>> _cells = [];

        public int AddOrFindConflict(int index, double xMm, double yMm, double zMm, out double distanceMm)
        {
            // Flat plans are compared in XY only: every dot sits in the one Z layer 0.
            if (!threeD) zMm = 0;
            var cx = (long)Math.Floor(xMm / minSpacingMm);
            var cy = (long)Math.Floor(yMm / minSpacingMm);
            var cz = (long)Math.Floor(zMm / minSpacingMm);
            var best = -1;
            distanceMm = double.PositiveInfinity;
            for (var dx = -1L; dx <= 1; dx++)
            {
                for (var dy = -1L; dy <= 1; dy++)
                {
                    for (var dz = -1L; dz <= 1; dz++)
                    {
                        if (!_cells.TryGetValue((cx + dx, cy + dy, cz + dz), out var cell))
                        {
                            continue;
                        }
                        foreach (var (other, ox, oy, oz) in cell)
                        {
                            var d = Math.Sqrt(((xMm - ox) * (xMm - ox)) + ((yMm - oy) * (yMm - oy)) + ((zMm - oz) * (zMm - oz)));
                            if (d < minSpacingMm && (d < distanceMm || (d == distanceMm && other < best)))
                            {
                                best = other;
                                distanceMm = d;
                            }
                        }
                    }
                }
            }
            if (best < 0)
            {
                if (!_cells.TryGetValue((cx, cy, cz), out var home))
                {
                    home = new List<(int, double, double, double)>(2);
                    _cells.Add((cx, cy, cz), home);
                }
                home.Add((index, xMm, yMm, zMm));
            }
            return best;
        }
    }
}
