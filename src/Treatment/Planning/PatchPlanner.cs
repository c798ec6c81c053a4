using System.Globalization;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Treatment.Planning;

/// <summary>
/// One head position of a session: the head turned about its centre so that a part of the scalp faces the
/// needle, which plunges along the machine's Z.
/// </summary>
/// <param name="Number">1-based, in the order the patches are placed.</param>
/// <param name="Axis">The skin normal (frame H) that the turn brings up to the machine's Z.</param>
/// <param name="HeadPose">The turn: p' = HeadPose · p for every point of the head, frame H (a rotation about the head's centre).</param>
/// <param name="Instruction">What the operator does, e.g. "tilt the head back 35° (chin up)".</param>
/// <param name="MaxTiltDeg">The largest angle between a member dot's normal and the machine's Z in this position.</param>
public sealed record HeadPatch(int Number, Vec3 Axis, RigidTransform HeadPose, string Instruction, double MaxTiltDeg);

/// <summary>Patches, each dot's patch (index into <see cref="Patches"/>, or -1 when no position reaches it), and the dots no position reaches.</summary>
public sealed record PatchPlan(IReadOnlyList<HeadPatch> Patches, IReadOnlyList<int> PatchOfDot, IReadOnlyList<int> Unreachable);

/// <summary>
/// Splits dots on a curved scalp into patches a vertical needle reaches: in each patch every dot's skin
/// normal is within the profile's <c>maxNeedleTiltDeg</c> of the machine's Z, and its hover and depth
/// targets lie inside the machine's envelope for the profile's fixed head pose moved by the patch's head
/// pose (the head turned about its centre so the patch faces up, then moved so the patch sits where the
/// machine works). Axes come from greedy caps of the tilt limit (starting at the most upward-facing dot left)
/// refined by a few rounds of moving each to the mean normal of its nearest dots; each dot goes to the nearest
/// axis that reaches it. Dots that no position reaches are reported, never placed.
/// </summary>
public static class PatchPlanner
{
    /// <summary>
    /// Plans patches for dots at <paramref name="pointsH"/> with unit normals <paramref name="normalsH"/> (frame H),
    /// the head turning about <paramref name="headCenterH"/>; <paramref name="depthMm"/> is each dot's depth (its
    /// targets are the profile's hover height above the skin and that depth below it).
    /// </summary>
    public static PatchPlan Plan(IReadOnlyList<Vec3> pointsH, IReadOnlyList<Vec3> normalsH, IReadOnlyList<double> depthMm, Vec3 headCenterH, MachineProfile profile)
    {
        ArgumentNullException.ThrowIfNull(pointsH);
        ArgumentNullException.ThrowIfNull(normalsH);
        ArgumentNullException.ThrowIfNull(depthMm);
        ArgumentNullException.ThrowIfNull(profile);
        var n = pointsH.Count;
        var limitDeg = profile.MaxNeedleTiltDeg;

        // 1. Axes: greedy caps of the tilt limit, then a few rounds of moving each axis to the mean normal of
        //    the dots nearest to it (fewer, fuller patches than the greedy pass alone).
        var axes = new List<Vec3>();
        var left = new HashSet<int>(Enumerable.Range(0, n));
        while (left.Count > 0)
        {
            var seed = left.MaxBy(i => normalsH[i].Z);
            var axis = normalsH[seed];
            for (var round = 0; round < 3; round++)
            {
                var mean = left.Where(i => AngleDeg(normalsH[i], axis) <= limitDeg).Aggregate(Vec3.Zero, (s, i) => s + normalsH[i]).Normalized();
                if (mean == Vec3.Zero || AngleDeg(normalsH[seed], mean) > limitDeg) break;
                axis = mean;
            }
            axes.Add(axis);
            left.RemoveWhere(i => AngleDeg(normalsH[i], axis) <= limitDeg);
        }
        for (var round = 0; round < 6; round++)
        {
            var members = axes.Select(_ => new List<int>()).ToList();
            for (var i = 0; i < n; i++)
            {
                var best = Nearest(axes, normalsH[i]);
                if (AngleDeg(normalsH[i], axes[best]) <= limitDeg) members[best].Add(i);
            }
            var next = new List<Vec3>();
            for (var a = 0; a < axes.Count; a++)
            {
                if (members[a].Count == 0) continue;
                var mean = members[a].Aggregate(Vec3.Zero, (s, i) => s + normalsH[i]).Normalized();
                next.Add(members[a].All(i => AngleDeg(normalsH[i], mean) <= limitDeg) ? mean : axes[a]);
            }
            axes = next;
        }

        // 2. Members: each dot to the nearest axis within the tilt limit whose head position lets the machine reach it.
        var up = new Vec3(0, 0, 1);
        var fixedHead = profile.FixedHead.ToTransform();
        var poses = axes.Select(axis =>
        {
            var turn = TurnBringingUp(axis, headCenterH);
            // Then move the head so that this part of the scalp sits where the machine works (its centre over the
            // head frame's origin): the chair and the head rest are moved with it.
            var members = Enumerable.Range(0, n).Where(i => AngleDeg(normalsH[i], axis) <= limitDeg).ToList();
            var centre = members.Count == 0 ? turn.Apply(headCenterH) : members.Aggregate(Vec3.Zero, (s, i) => s + turn.Apply(pointsH[i])) * (1.0 / members.Count);
            return new RigidTransform(1, 0, 0, 0, 1, 0, 0, 0, 1, -centre) * turn;
        }).ToList();
        bool Reaches(int patch, int i)
        {
            if (AngleDeg(Rotate(poses[patch], normalsH[i]), up) > limitDeg + 1e-9) return false;
            var skin = fixedHead.Apply(poses[patch].Apply(pointsH[i]));
            return profile.InEnvelope(skin with { Z = skin.Z + profile.HoverHeightMm }) && profile.InEnvelope(skin with { Z = skin.Z - depthMm[i] });
        }
        var patchOf = Enumerable.Repeat(-1, n).ToArray();
        var unreachable = new List<int>();
        for (var i = 0; i < n; i++)
        {
            var order = Enumerable.Range(0, axes.Count).OrderBy(a => AngleDeg(normalsH[i], axes[a]));
            foreach (var a in order)
            {
                if (!Reaches(a, i)) continue;
                patchOf[i] = a;
                break;
            }
            if (patchOf[i] < 0) unreachable.Add(i);
        }

        // 3. Patches in an order that turns the head little between them: front to back, left to right.
        var used = Enumerable.Range(0, axes.Count).Where(a => patchOf.Contains(a)).OrderBy(a => -Math.Round(Math.Atan2(axes[a].Y, axes[a].Z) * 180 / Math.PI / 10)).ThenBy(a => axes[a].X).ToList();
        var renumber = new Dictionary<int, int>();
        var patches = new List<HeadPatch>();
        foreach (var a in used)
        {
            renumber[a] = patches.Count;
            var maxTilt = Enumerable.Range(0, n).Where(i => patchOf[i] == a).Max(i => AngleDeg(Rotate(poses[a], normalsH[i]), up));
            patches.Add(new HeadPatch(patches.Count + 1, axes[a], poses[a], Instruction(axes[a]), maxTilt));
        }
        for (var i = 0; i < n; i++)
        {
            if (patchOf[i] >= 0) patchOf[i] = renumber[patchOf[i]];
        }
        return new PatchPlan(patches, patchOf, unreachable);
    }

    private static int Nearest(List<Vec3> axes, Vec3 normal)
    {
        var best = 0;
        for (var a = 1; a < axes.Count; a++)
        {
            if (Vec3.Dot(axes[a], normal) > Vec3.Dot(axes[best], normal)) best = a;
        }
        return best;
    }

    /// <summary>The rotation about <paramref name="centerH"/> that brings the direction <paramref name="axis"/> up to +Z by the shortest turn.</summary>
    public static RigidTransform TurnBringingUp(Vec3 axis, Vec3 centerH)
    {
        var up = new Vec3(0, 0, 1);
        var a = axis.Normalized();
        var cross = Vec3.Cross(a, up);
        var sin = cross.Length;
        var cos = Vec3.Dot(a, up);
        var rotationVector = sin < 1e-12 ? Vec3.Zero : cross * (Math.Atan2(sin, cos) / sin);
        var rotation = Rotations.FromRotationVector(rotationVector, Vec3.Zero);
        // p' = R (p - c) + c
        return Rotations.FromRotationVector(rotationVector, centerH - rotation.Apply(centerH));
    }

    /// <summary>A direction turned by the rotation part of <paramref name="pose"/>.</summary>
    public static Vec3 Rotate(RigidTransform pose, Vec3 direction) => pose.Apply(direction) - pose.Translation;

    /// <summary>The angle between two directions, degrees.</summary>
    public static double AngleDeg(Vec3 a, Vec3 b) =>
        Math.Acos(Math.Clamp(Vec3.Dot(a.Normalized(), b.Normalized()), -1, 1)) * 180 / Math.PI;

    /// <summary>
    /// The operator's words for bringing the scalp whose normal is <paramref name="axis"/> (x right, y front,
    /// z up) up under the needle: tilting the head back raises the front of the scalp, bowing it raises the
    /// crown, leaning it to the left raises its right side.
    /// </summary>
    public static string Instruction(Vec3 axis)
    {
        var inv = CultureInfo.InvariantCulture;
        var pitch = Math.Atan2(axis.Y, axis.Z) * 180 / Math.PI;
        var roll = Math.Atan2(axis.X, axis.Z) * 180 / Math.PI;
        var parts = new List<string>();
        if (pitch >= 2.5) parts.Add(string.Create(inv, $"tilt the head back {pitch:0}° (chin up)"));
        else if (pitch <= -2.5) parts.Add(string.Create(inv, $"bow the head forward {-pitch:0}°"));
        if (roll >= 2.5) parts.Add(string.Create(inv, $"lean it {roll:0}° to the left (right side up)"));
        else if (roll <= -2.5) parts.Add(string.Create(inv, $"lean it {-roll:0}° to the right (left side up)"));
        if (parts.Count == 0) return "head upright, the top of the head under the needle";
        var text = string.Join(" and ", parts);
        return char.ToUpperInvariant(text[0]) + text[1..];
    }
}
