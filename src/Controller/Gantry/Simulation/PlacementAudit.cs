using SmpRobot.Geometry;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>A dot as commanded: its id, the depth point the plunge was sent to, and where it is on the head.</summary>
/// <param name="DotId">Plan dot id.</param>
/// <param name="CommandedDepthMm">Gantry-frame depth point the session plunged to (the ledger's target).</param>
/// <param name="PointInHeadMm">The dot on the skin, head frame.</param>
/// <param name="DepthMm">Planned depth below the skin, along its normal.</param>
public sealed record CommandedDot(string DotId, Vec3 CommandedDepthMm, Vec3 PointInHeadMm, double DepthMm);

/// <summary>Where one plunge landed against where the dot truly was at that moment.</summary>
/// <param name="DotId">Plan dot id.</param>
/// <param name="AtDepthSimSeconds">When the needle reached depth, simulated seconds since power-on.</param>
/// <param name="ErrorMm">3-D distance between the needle tip at depth and the dot's true depth point then.</param>
/// <param name="LateralErrorMm">
/// The same, across the skin: its part in the true skin's tangent plane; with a registration given
/// (<see cref="ScalpTruth.RegisteredHeadFromScalp"/>), against the dot where the registration puts it on the scalp.
/// </param>
/// <param name="DepthErrorMm">How much deeper (+) or shallower (−) than planned the tip went below the true skin, along its normal.</param>
/// <param name="TiltDeg">The angle between the needle (gantry Z) and the true skin normal at the dot then, degrees.</param>
/// <param name="LateralVsBoardMm">Across the skin against the dot where the true board placement puts it (includes a registration's slide along the skin); equal to <paramref name="LateralErrorMm"/> without a registration.</param>
public sealed record PlacementError(string DotId, double AtDepthSimSeconds, double ErrorMm, double LateralErrorMm, double DepthErrorMm, double TiltDeg, double LateralVsBoardMm);

/// <summary>
/// The true scalp for the depth audit: the simulated skin (with its true T_HS) and the nominal T_HS the plan's dots
/// were made with, which carries a plan dot onto the skin: the design's dot is a point of the scalp (frame S).
/// </summary>
/// <param name="RegisteredHeadFromScalp">
/// The T_HS the session placed on (its surface registration), or null. Probing the skin finds the surface; a slide of
/// the board along a near-spherical patch leaves the surface where it was and so cannot be seen by probing (the
/// registration keeps the board's nominal placement in that direction). The lateral error is then measured against
/// the dot where the registration puts it, and the slide shows apart, in <see cref="PlacementError.LateralVsBoardMm"/>.
/// </param>
public sealed record ScalpTruth(SimulatedScalp Scalp, RigidTransform NominalHeadFromScalp, RigidTransform? RegisteredHeadFromScalp = null);

/// <summary>
/// Checks placement against ground truth in simulation: for every commanded dot, finds in the
/// simulator's motion record the completed plunge that reached its commanded depth point, and
/// compares that point with the dot's true depth point at the moment the needle got there, from
/// the true head pose T_GH(t) of the synthetic scene. The measure of tracking + aiming + timing, and, with the true
/// scalp (<see cref="ScalpTruth"/>), of the surface registration: the depth reached below the real skin.
/// </summary>
public static class PlacementAudit
{
    /// <summary>
    /// Errors of the completed plunges of <paramref name="dots"/> (dots without one — never plunged,
    /// or cut short — are left out). <paramref name="truthAt"/> gives T_GH at a simulated second.
    /// Without <paramref name="scalp"/> the skin is the plan's own (its dot, with H's +Z as the normal, as a flat plan
    /// assumes); with it, the true skin of the simulated scalp at the dot's place on it.
    /// </summary>
    public static IReadOnlyList<PlacementError> Evaluate(IReadOnlyList<SimMotion> record, IEnumerable<CommandedDot> dots, Func<double, RigidTransform> truthAt, ScalpTruth? scalp = null)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(dots);
        ArgumentNullException.ThrowIfNull(truthAt);
        var errors = new List<PlacementError>();
        foreach (var dot in dots)
        {
            var plunge = record.FirstOrDefault(m => m.Completed && m.Kind == SimMotionKind.Feed && m.To.Z < m.From.Z
                && m.From.X == m.To.X && m.From.Y == m.To.Y && m.To.DistanceTo(dot.CommandedDepthMm) < 1e-6);
            if (plunge is null) continue;
            var gantryFromHead = truthAt(plunge.EndSimSeconds);
            var tip = plunge.To;
            Vec3 skin, normal;
            Vec3? registeredSkin = null;
            double depthReached;
            if (scalp is null)
            {
                skin = gantryFromHead.Apply(dot.PointInHeadMm);
                normal = Direction(gantryFromHead, new Vec3(0, 0, 1));
                depthReached = Vec3.Dot(skin - tip, normal);
            }
            else
            {
                // The dot's place on the scalp (frame S), found on the true skin; the tip's depth below the true skin is
                // its distance to the nearest skin point, along that point's normal.
                var gantryFromScalp = gantryFromHead * scalp.Scalp.HeadFromScalp;
                var scalpFromGantry = Rotations.Inverse(gantryFromScalp);
                var dotS = Rotations.Inverse(scalp.NominalHeadFromScalp).Apply(dot.PointInHeadMm);
                var onSkin = scalp.Scalp.Skin.ClosestPoint(dotS, SearchMm) ?? throw new InvalidOperationException($"dot {dot.DotId} is not on the simulated scalp");
                skin = gantryFromScalp.Apply(onSkin.Point);
                normal = Direction(gantryFromScalp, scalp.Scalp.Skin.NormalAt(onSkin));
                var tipS = scalpFromGantry.Apply(tip);
                var underTip = scalp.Scalp.Skin.ClosestPoint(tipS, SearchMm) ?? throw new InvalidOperationException($"the needle tip at dot {dot.DotId} is not near the simulated scalp");
                depthReached = -Vec3.Dot(tipS - underTip.Point, scalp.Scalp.Skin.NormalAt(underTip));
                if (scalp.RegisteredHeadFromScalp is { } registered) registeredSkin = (gantryFromHead * registered).Apply(onSkin.Point);
            }
            var truth = skin - (normal * dot.DepthMm);
            var d = tip - truth;
            var acrossBoard = Across(d, normal);
            var across = registeredSkin is { } aimed ? Across(tip - (aimed - (normal * dot.DepthMm)), normal) : acrossBoard;
            var tiltDeg = Math.Acos(Math.Clamp(normal.Z, -1, 1)) * 180 / Math.PI;
            errors.Add(new PlacementError(dot.DotId, plunge.EndSimSeconds, d.Length, across, depthReached - dot.DepthMm, tiltDeg, acrossBoard));
        }
        return errors;
    }

    /// <summary>How far from a dot the audit looks for the skin, mm.</summary>
    private const double SearchMm = 10;

    /// <summary>The length of <paramref name="d"/>'s part across <paramref name="normal"/> (in the tangent plane).</summary>
    private static double Across(Vec3 d, Vec3 normal) => (d - (normal * Vec3.Dot(d, normal))).Length;

    private static Vec3 Direction(RigidTransform t, Vec3 v) => (t.Apply(v) - t.Apply(Vec3.Zero)).Normalized();
}
