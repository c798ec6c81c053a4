using System.Text.RegularExpressions;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller.Security;

/// <summary>Adding users: the name's form, a new token, its hash into the store. Shared by the AccessService and <c>smp-controller user add</c>.</summary>
public static partial class UserAccounts
{
    /// <summary>Longest user name.</summary>
    public const int MaxNameLength = 64;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._@-]*$")]
    private static partial Regex NameForm();

    /// <summary>
    /// Adds <paramref name="name"/> with <paramref name="role"/>; returns the record and the token (shown once, never
    /// stored). ArgumentException for a malformed name; InvalidOperationException when an active user has it.
    /// </summary>
    public static (UserRecord User, string Token) Add(LedgerStore store, string name, Role role, string createdBy)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or > MaxNameLength || !NameForm().IsMatch(name) || name == CallerIdentity.InsecureLoopback.Name)
        {
            throw new ArgumentException($"'{Services.Bounded.Cut(name, MaxNameLength)}' is not a user name: 1-{MaxNameLength} letters, digits and . _ @ -, starting with a letter or digit");
        }
        var token = AccessTokens.Create();
        return (store.AddUser(name, role.Name(), AccessTokens.Hash(token), createdBy), token);
    }
}
