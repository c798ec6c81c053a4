using SmpRobot.Geometry;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>A dot as commanded: its id, the depth point the plunge was sent to, and where it is on the head.</summary>
/// <param name="DotId">Plan dot id.</param>
/// <param name="CommandedDepthMm">Gantry-frame depth point the session plunged to (the ledger's target).</param>
/// <param name="PointInHeadMm">The dot on the skin, head frame.</param>
/// <param name="DepthMm">Planned depth below the skin.</param>
public sealed record CommandedDot(string DotId, Vec3 CommandedDepthMm, Vec3 PointInHeadMm, double DepthMm);

/// <summary>Where one plunge landed against where the dot truly was at that moment.</summary>
/// <param name="DotId">Plan dot id.</param>
/// <param name="AtDepthSimSeconds">When the needle reached depth, simulated seconds since power-on.</param>
/// <param name="ErrorMm">3-D distance between the needle tip at depth and the dot's true depth point then.</param>
/// <param name="LateralErrorMm">The same, in gantry X/Y only.</param>
public sealed record PlacementError(string DotId, double AtDepthSimSeconds, double ErrorMm, double LateralErrorMm);

/// <summary>
/// Checks placement against ground truth in simulation: for every commanded dot, finds in the
/// simulator's motion record the completed plunge that reached its commanded depth point, and
/// compares that point with the dot's true depth point at the moment the needle got there, from
/// the true head pose T_GH(t) of the synthetic scene. The measure of tracking + aiming + timing.
/// </summary>
public static class PlacementAudit
{
    /// <summary>
    /// Errors of the completed plunges of <paramref name="dots"/> (dots without one — never plunged,
    /// or cut short — are left out). <paramref name="truthAt"/> gives T_GH at a simulated second.
    /// </summary>
    public static IReadOnlyList<PlacementError> Evaluate(IReadOnlyList<SimMotion> record, IEnumerable<CommandedDot> dots, Func<double, RigidTransform> truthAt)
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
            var skin = truthAt(plunge.EndSimSeconds).Apply(dot.PointInHeadMm);
            var truth = skin with { Z = skin.Z - dot.DepthMm };
            var d = plunge.To - truth;
            errors.Add(new PlacementError(dot.DotId, plunge.EndSimSeconds, d.Length, Math.Sqrt((d.X * d.X) + (d.Y * d.Y))));
        }
        return errors;
    }
}
