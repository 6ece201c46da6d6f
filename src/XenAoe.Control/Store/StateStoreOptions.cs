using System.Globalization;

namespace XenAoe.Control.Store;

public enum StateStoreKind
{
    Sqlite,
    Etcd,
}

/// <summary>
/// Where the controller keeps its state, from one string: <c>sqlite:/var/lib/xenaoe/controller.db</c> or
/// <c>etcd:http://127.0.0.1:2379,http://127.0.0.1:22379[;prefix=/xenaoe/][;ttl=5]</c> (ttl: the leader lease, seconds).
/// </summary>
public sealed record StateStoreOptions
{
    public required StateStoreKind Kind { get; init; }

    /// <summary>The SQLite database file (Sqlite only).</summary>
    public string? SqlitePath { get; init; }

    /// <summary>Member client URLs (Etcd only).</summary>
    public IReadOnlyList<Uri> EtcdEndpoints { get; init; } = [];

    /// <summary>Prefix of every etcd key; default <c>/xenaoe/</c>.</summary>
    public string EtcdKeyPrefix { get; init; } = "/xenaoe/";

    /// <summary>The leader's lease: how long a dead leader keeps leadership; default 5 s.</summary>
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(5);

    /// <exception cref="FormatException">Says what is wrong and what a valid string looks like.</exception>
    public static StateStoreOptions Parse(string text)
    {
        const string Expected = "expected 'sqlite:/path/to/controller.db' or 'etcd:http://host:2379,http://host:22379[;prefix=/xenaoe/][;ttl=5]'";
        if (string.IsNullOrWhiteSpace(text))
            throw new FormatException($"The state store is empty; {Expected}.");
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var scheme = colon < 0 ? text : text[..colon];
        var rest = colon < 0 ? "" : text[(colon + 1)..].Trim();
        switch (scheme.Trim().ToLowerInvariant())
        {
            case "sqlite":
                if (rest.Length == 0)
                    throw new FormatException($"'{text}' names no database file; {Expected}.");
                return new StateStoreOptions { Kind = StateStoreKind.Sqlite, SqlitePath = rest };
            case "etcd":
                return ParseEtcd(text, rest, Expected);
            default:
                throw new FormatException($"'{text}' has an unknown store kind '{scheme}'; {Expected}.");
        }
    }

    /// <summary>Opens the store these options describe.</summary>
    public IStateStore CreateStore() => Kind switch
    {
        StateStoreKind.Sqlite => new SqliteStateStore(SqlitePath!),
        _ => new EtcdStateStore(EtcdEndpoints, EtcdKeyPrefix),
    };

    /// <summary>The leader election that goes with <paramref name="store"/> (made by <see cref="CreateStore"/>).</summary>
    public ILeaderElection CreateLeaderElection(IStateStore store, string name = "controller") => store switch
    {
        SqliteStateStore sqlite => sqlite.CreateLeaderElection(),
        EtcdStateStore etcd => etcd.CreateLeaderElection(name, LeaseTtl),
        _ => throw new ArgumentException($"No leader election for a {store.GetType().Name}.", nameof(store)),
    };

    private static StateStoreOptions ParseEtcd(string text, string rest, string expected)
    {
        var parts = rest.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
            throw new FormatException($"'{text}' names no etcd member; {expected}.");
        var endpoints = new List<Uri>();
        foreach (var item in parts[0].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!Uri.TryCreate(item, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || uri.AbsolutePath != "/")
                throw new FormatException($"'{item}' in '{text}' is not an etcd member URL such as http://127.0.0.1:2379; {expected}.");
            endpoints.Add(uri);
        }
        if (endpoints.Count == 0)
            throw new FormatException($"'{text}' names no etcd member; {expected}.");
        var options = new StateStoreOptions { Kind = StateStoreKind.Etcd, EtcdEndpoints = endpoints };
        foreach (var setting in parts.Skip(1))
        {
            var eq = setting.IndexOf('=', StringComparison.Ordinal);
            var name = eq < 0 ? setting : setting[..eq];
            var value = eq < 0 ? "" : setting[(eq + 1)..];
            options = name switch
            {
                "prefix" when value.Length > 0 && !value.Any(char.IsControl) => options with { EtcdKeyPrefix = value },
                "ttl" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds is >= 1 and <= 3600 =>
                    options with { LeaseTtl = TimeSpan.FromSeconds(seconds) },
                "prefix" or "ttl" => throw new FormatException($"'{setting}' in '{text}' is not valid: prefix is a non-empty key prefix, ttl whole seconds 1-3600."),
                _ => throw new FormatException($"'{setting}' in '{text}' is not a known setting (prefix, ttl); {expected}."),
            };
        }
        return options;
    }
}
