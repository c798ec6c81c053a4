namespace SmpRobot.Controller.Security;

/// <summary>What a user may do, each role including the ones below it. The controller checks it on every call (see <see cref="RpcPolicies"/>).</summary>
public enum Role
{
    /// <summary>Reads: sessions, status, previews, calibrations, registrations. Any authenticated user may also press the e-stop.</summary>
    Observer = 1,

    /// <summary>Observer, and runs sessions: create, start, pause, resume, abort, resolve dots, reset the e-stop, home, jog, probe the scalp, the drift check.</summary>
    Operator = 2,

    /// <summary>Operator, and calibrates the camera and the gantry.</summary>
    Engineer = 3,

    /// <summary>Engineer, and manages users.</summary>
    Admin = 4,
}

/// <summary>Role names as stored and typed ("observer", "operator", "engineer", "admin").</summary>
public static class Roles
{
    /// <summary>The role's name: lower case.</summary>
    public static string Name(this Role role) => role switch
    {
        Role.Observer => "observer",
        Role.Operator => "operator",
        Role.Engineer => "engineer",
        Role.Admin => "admin",
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "not a role"),
    };

    /// <summary>Every role, lowest first.</summary>
    public static IReadOnlyList<Role> All { get; } = [Role.Observer, Role.Operator, Role.Engineer, Role.Admin];

    /// <summary>The role named <paramref name="name"/> (any case); ArgumentException naming the roles otherwise.</summary>
    public static Role Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var role in All)
        {
            if (string.Equals(role.Name(), name.Trim(), StringComparison.OrdinalIgnoreCase)) return role;
        }
        throw new ArgumentException($"'{name}' is not a role: use observer, operator, engineer or admin");
    }
}
