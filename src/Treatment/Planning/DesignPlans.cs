using System.Globalization;
using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Sampling;

namespace SmpRobot.Treatment.Planning;

/// <summary>One session's plan and what the machine profile says of it.</summary>
public sealed record SessionPlan(int Session, Plan Plan, PlanValidationResult Check);

/// <summary>Every session's plan of a design, the frame they are in, their head positions, and the dots no position reaches.</summary>
/// <param name="HeadFromScalp">T_HS: the design's scalp frame S in the plans' head frame H.</param>
/// <param name="HeadCenterH">The head's centre in H (head positions turn about it).</param>
/// <param name="Patches">The head positions, shared by every session (each session uses those it has dots in).</param>
/// <param name="Sessions">One plan per session.</param>
/// <param name="Unreachable">Dots no head position lets the machine reach within its envelope and tilt limit: left out, reported.</param>
public sealed record DesignPlanSet(RigidTransform HeadFromScalp, Vec3 HeadCenterH, IReadOnlyList<HeadPatch> Patches, IReadOnlyList<SessionPlan> Sessions, IReadOnlyList<DesignDot> Unreachable);

/// <summary>
/// Writes a design's dots as plans in the existing Plan format, one per session: positions, depth, dwell and
/// pigment as every plan has, plus the session, zone, layer, needle, the skin normal and the head position
/// (patch) of each dot, and where the plan came from. The plans' head frame H is nominal until the scalp is
/// measured: the scalp frame's axes (x right, y front, z up) with the head's centre straight below the origin,
/// the top of the head at about z = 0. The head positions are planned once for every dot of the design, so
/// every session uses the same ones.
/// </summary>
public static class DesignPlans
{
    /// <summary>What writes the plans.</summary>
    public const string Generator = "smp design plan";

    /// <summary>T_HS: the scalp map's axes, the head's centre moved to (0, 0, −(its distance to the vertex)).</summary>
    public static RigidTransform NominalHeadFromScalp(ResolvedDesign design)
    {
        ArgumentNullException.ThrowIfNull(design);
        var map = design.Map;
        double[] rotation = [map.Right.X, map.Right.Y, map.Right.Z, map.Front.X, map.Front.Y, map.Front.Z, map.Up.X, map.Up.Y, map.Up.Z];
        var top = (design.Landmarks.Vertex - design.Landmarks.Center).Length;
        var rotated = Rotations.FromMatrix(rotation, Vec3.Zero).Apply(design.Landmarks.Center);
        return Rotations.FromMatrix(rotation, new Vec3(0, 0, -top) - rotated);
    }

    /// <summary>Builds every session's plan of <paramref name="dots"/> for <paramref name="profile"/>, and checks each.</summary>
    public static DesignPlanSet Build(DesignDots dots, MachineProfile profile)
    {
        ArgumentNullException.ThrowIfNull(dots);
        ArgumentNullException.ThrowIfNull(profile);
        var design = dots.Design;
        var headFromScalp = NominalHeadFromScalp(design);
        var centerH = headFromScalp.Apply(design.Landmarks.Center);
        var pointsH = dots.Dots.Select(d => headFromScalp.Apply(d.PointMm)).ToList();
        var normalsH = dots.Dots.Select(d => PatchPlanner.Rotate(headFromScalp, d.Normal).Normalized()).ToList();
        var patches = PatchPlanner.Plan(pointsH, normalsH, dots.Dots.Select(d => d.DepthMm).ToList(), centerH, profile);

        var sessions = new List<SessionPlan>();
        var validator = new PlanValidator(profile);
        for (var k = 1; k <= design.SessionCount; k++)
        {
            var plan = new Plan
            {
                Name = Shorten(string.Create(CultureInfo.InvariantCulture, $"{design.Source.Name}: session {k} of {design.SessionCount}"), PlanValidator.MaxNameLength),
                Units = "mm",
                Source = new PlanSource
                {
                    DesignName = design.Source.Name,
                    DesignSha256 = design.SourceSha256,
                    Session = (uint)k,
                    SessionCount = (uint)design.SessionCount,
                    HeadFromScalp = ToMessage(headFromScalp),
                    Generator = Generator,
                    HeadModelFile = HeadModelFileName(design.MeshPath),
                    HeadModelSha256 = design.MeshSha256,
                },
            };
            var used = new SortedSet<int>();
            for (var i = 0; i < dots.Dots.Count; i++)
            {
                var d = dots.Dots[i];
                if (d.Session != k || patches.PatchOfDot[i] < 0) continue;
                used.Add(patches.PatchOfDot[i]);
                var p = pointsH[i];
                var n = normalsH[i];
                plan.Dots.Add(new Dot
                {
                    Id = d.Id,
                    XMm = Math.Round(p.X, 3),
                    YMm = Math.Round(p.Y, 3),
                    ZMm = Math.Round(p.Z, 3),
                    DepthMm = Math.Round(d.DepthMm, 3),
                    DwellMs = d.DwellMs,
                    PigmentId = d.PigmentId,
                    Session = (uint)k,
                    Zone = d.Region.Name,
                    Layer = d.Layer switch { DotLayer.Hairline => "hairline", DotLayer.Scar => "scar", _ => "body" },
                    Needle = d.Needle.Label,
                    NormalX = Math.Round(n.X, 6),
                    NormalY = Math.Round(n.Y, 6),
                    NormalZ = Math.Round(n.Z, 6),
                    Patch = (uint)(patches.PatchOfDot[i] + 1),
                });
            }
            foreach (var index in used)
            {
                var patch = patches.Patches[index];
                plan.Patches.Add(new PlanPatch { Number = (uint)patch.Number, Instruction = patch.Instruction, HeadPose = ToMessage(patch.HeadPose) });
            }
            sessions.Add(new SessionPlan(k, plan, validator.Validate(plan)));
        }
        var unreachable = patches.Unreachable.Select(i => dots.Dots[i]).ToList();
        return new DesignPlanSet(headFromScalp, centerH, patches.Patches, sessions, unreachable);
    }

    /// <summary>The name the head model's copy has beside the plans: "head-model" and the mesh's own extension.</summary>
    public static string HeadModelFileName(string meshPath) => "head-model" + Path.GetExtension(meshPath).ToLowerInvariant();

    /// <summary>A rigid transform as the plan format writes it (rotation vector in degrees, translation in mm, rounded to a micrometre and a micro-degree).</summary>
    public static FrameTransform ToMessage(RigidTransform t)
    {
        var r = Rotations.VectorFromMatrix(Rotations.RotationMatrix(t)) * (180 / Math.PI);
        return new FrameTransform
        {
            RxDeg = Math.Round(r.X, 6),
            RyDeg = Math.Round(r.Y, 6),
            RzDeg = Math.Round(r.Z, 6),
            TxMm = Math.Round(t.Translation.X, 4),
            TyMm = Math.Round(t.Translation.Y, 4),
            TzMm = Math.Round(t.Translation.Z, 4),
        };
    }

    /// <summary>The rigid transform a plan's <see cref="FrameTransform"/> stands for.</summary>
    public static RigidTransform FromMessage(FrameTransform? t) => t is null
        ? RigidTransform.Identity
        : Rotations.FromRotationVector(new Vec3(t.RxDeg, t.RyDeg, t.RzDeg) * (Math.PI / 180), new Vec3(t.TxMm, t.TyMm, t.TzMm));

    private static string Shorten(string text, int max) => text.Length <= max ? text : text[..(max - 1)] + "…";
}
