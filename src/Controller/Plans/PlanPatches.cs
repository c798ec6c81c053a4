using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;

namespace SmpRobot.Controller.Plans;

/// <summary>One head position of a plan: its number, the operator's instruction and the head's turn (frame H).</summary>
public sealed record HeadPosition(int Number, string Instruction, RigidTransform HeadPose);

/// <summary>
/// A plan's head positions (patches) and which dot is placed in which. A plan without patches has none, and
/// every dot is in position 0: the head's nominal place.
/// </summary>
public sealed class PlanPatches
{
    private readonly Dictionary<int, HeadPosition> _positions;
    private readonly Dictionary<string, int> _patchOf;
    private Dictionary<string, Vec3> _normals = new(StringComparer.Ordinal);

    /// <summary>No patches: every dot in the nominal position.</summary>
    public static readonly PlanPatches None = new([], []);

    private PlanPatches(Dictionary<int, HeadPosition> positions, Dictionary<string, int> patchOf)
    {
        _positions = positions;
        _patchOf = patchOf;
    }

    /// <summary>
    /// T_HS the plan was made with (its source's head_from_scalp) when it names a head model, which a surface
    /// registration can then correct; null for a plan without a head model.
    /// </summary>
    public RigidTransform? NominalHeadFromScalp { get; private init; }

    /// <summary>The head positions of <paramref name="plan"/> (a valid plan: numbers unique and poses finite).</summary>
    public static PlanPatches Of(Plan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        RigidTransform? nominal = null;
        if (plan.Source is { HeadModelSha256.Length: > 0 } source)
        {
            var t = source.HeadFromScalp ?? new FrameTransform();
            nominal = Rotations.FromRotationVector(new Vec3(t.RxDeg, t.RyDeg, t.RzDeg) * (Math.PI / 180), new Vec3(t.TxMm, t.TyMm, t.TzMm));
        }
        var normals = new Dictionary<string, Vec3>(StringComparer.Ordinal);
        foreach (var dot in plan.Dots)
        {
            var n = new Vec3(dot.NormalX, dot.NormalY, dot.NormalZ);
            if (n != Vec3.Zero) normals[dot.Id] = n.Normalized();
        }
        if (plan.Patches.Count == 0) return nominal is null && normals.Count == 0 ? None : new PlanPatches([], []) { NominalHeadFromScalp = nominal, _normals = normals };
        var positions = new Dictionary<int, HeadPosition>();
        foreach (var patch in plan.Patches)
        {
            var pose = patch.HeadPose ?? new FrameTransform();
            positions[(int)patch.Number] = new HeadPosition((int)patch.Number, patch.Instruction,
                Rotations.FromRotationVector(new Vec3(pose.RxDeg, pose.RyDeg, pose.RzDeg) * (Math.PI / 180), new Vec3(pose.TxMm, pose.TyMm, pose.TzMm)));
        }
        var patchOf = new Dictionary<string, int>(plan.Dots.Count, StringComparer.Ordinal);
        foreach (var dot in plan.Dots) patchOf[dot.Id] = (int)dot.Patch;
        return new PlanPatches(positions, patchOf) { NominalHeadFromScalp = nominal, _normals = normals };
    }

    /// <summary>The head positions of a stored plan's JSON; none when the text is missing or does not parse.</summary>
    public static PlanPatches OfJson(string? planJson)
    {
        if (string.IsNullOrEmpty(planJson)) return None;
        try
        {
            return Of(Plan.Parser.ParseJson(planJson));
        }
        catch (InvalidProtocolBufferException)
        {
            return None;
        }
    }

    /// <summary>How many head positions the plan has.</summary>
    public int Count => _positions.Count;

    /// <summary>The patch of dot <paramref name="dotId"/> (0: the nominal position).</summary>
    public int Of(string dotId) => _patchOf.GetValueOrDefault(dotId);

    /// <summary>Head position <paramref name="number"/>; null for 0 (nominal) or an unknown number.</summary>
    public HeadPosition? Position(int number) => _positions.GetValueOrDefault(number);

    /// <summary>The skin normal the plan gives dot <paramref name="dotId"/> (unit, frame H), or null when it gives none (a flat plan).</summary>
    public Vec3? Normal(string dotId) => _normals.TryGetValue(dotId, out var n) ? n : null;

    /// <summary>The head's turn for patch <paramref name="number"/> (identity for the nominal position).</summary>
    public RigidTransform HeadPose(int number) => Position(number)?.HeadPose ?? RigidTransform.Identity;
}
