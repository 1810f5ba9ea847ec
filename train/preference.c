#include "train/preference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

const char *const PREF_METRIC_NAMES[PREF_N_METRICS] = {
    [PREF_M_REWARDS_CHOSEN] = "rewards/chosen",
    [PREF_M_REWARDS_REJECTED] = "rewards/rejected",
    [PREF_M_REWARDS_MARGINS] = "rewards/margins",
    [PREF_M_REWARDS_ACCURACIES] = "rewards/accuracies",
    [PREF_M_LOGPS_CHOSEN] = "logps/chosen",
    [PREF_M_LOGPS_REJECTED] = "logps/rejected",
    [PREF_M_NLL_LOSS] = "nll_loss",
    [PREF_M_LOG_ODDS_RATIO] = "log_odds_ratio",
    [PREF_M_LOG_ODDS_CHOSEN] = "log_odds_chosen",
};

int pref_n_metrics(objective_kind objective) {
    return objective == OBJECTIVE_ORPO ? PREF_N_METRICS : PREF_M_NLL_LOSS;
}

int pref_ctx_init(pref_ctx *c, const train_config *tc, int pairs, int T,
                  const lora_adapter *ref) {
    memset(c, 0, sizeof *c);
    c->tc = tc;
    c->pairs = pairs;
    c->T = T;
    c->ref = ref;
    size_t n = (size_t)2 * pairs * T;
    c->logp = malloc(n * sizeof(double));
    c->weight = malloc(n * sizeof(float));
    c->ref_sum = malloc((size_t)6 * pairs * sizeof(double));
    if (!c->logp || !c->weight || !c->ref_sum) {
        pref_ctx_free(c);
        return err_set("train: out of memory for %d preference pairs of %d tokens", pairs, T);
    }
    c->row_sum = c->ref_sum + 2 * pairs;
    c->row_count = c->row_sum + 2 * pairs;
    return 0;
}

void pref_ctx_free(pref_ctx *c) {
    free(c->logp);
    free(c->weight);
    free(c->ref_sum);
    memset(c, 0, sizeof *c);
}

// log sigmoid(x) without overflow.
static double log_sigmoid(double x) { return x < 0 ? x - log1p(exp(x)) : -log1p(exp(-x)); }
static double sigmoid(double x) { return x < 0 ? exp(x) / (1.0 + exp(x)) : 1.0 / (1.0 + exp(-x)); }
// log(1 - exp(x)) for x < 0, branching at -ln 2 as TRL's log1mexp does.
static double log1mexp(double x) { return x < -M_LN2 ? log1p(-exp(x)) : log(-expm1(x)); }

// Row sums of a micro-batch: rows [0, 2 pairs) of T positions; resp selects response tokens.
static void row_sums(const double *logp, const uint8_t *resp, int rows, int T, double *sum,
                     double *count) {
    for (int r = 0; r < rows; r++) {
        double s = 0.0, n = 0.0;
        for (int t = 0; t < T; t++)
            if (resp[(int64_t)r * T + t]) s += logp[(int64_t)r * T + t], n += 1.0;
        sum[r] = s;
        if (count) count[r] = n;
    }
}

// One DPO pair: its loss, d(loss)/d(policy logp sum) of chosen (g[0]) and rejected (g[1]).
// lr = policy - reference log-probability sums; n = response tokens (IPO's normalisation).
static double dpo_pair(const train_config *tc, const double lr[2], const double n[2],
                       double g[2]) {
    const double beta = tc->dpo_beta, eps = tc->dpo_label_smoothing;
    const double delta = lr[0] - lr[1];
    double loss, dd;
    switch (tc->dpo_loss) {
    case DPO_LOSS_HINGE:
        loss = 1.0 - beta * delta > 0.0 ? 1.0 - beta * delta : 0.0;
        dd = loss > 0.0 ? -beta : 0.0;
        g[0] = dd;
        g[1] = -dd;
        return loss;
    case DPO_LOSS_IPO: {
        // TRL divides each log-ratio by its completion's token count (at least 1).
        double nc = n[0] > 1.0 ? n[0] : 1.0, nr = n[1] > 1.0 ? n[1] : 1.0;
        double d = lr[0] / nc - lr[1] / nr - 1.0 / (2.0 * beta);
        g[0] = 2.0 * d / nc;
        g[1] = -2.0 * d / nr;
        return d * d;
    }
    default:
        // Conservative DPO: label-smoothed sigmoid; eps = 0 is TRL's sigmoid loss.
        loss = -(1.0 - eps) * log_sigmoid(beta * delta) - eps * log_sigmoid(-beta * delta);
        dd = -(1.0 - eps) * beta * sigmoid(-beta * delta) + eps * beta * sigmoid(beta * delta);
        g[0] = dd;
        g[1] = -dd;
        return loss;
    }
}

void pref_micro_batch(pref_ctx *c, lm_plan *p, const lm_batch *b, const uint8_t *resp,
                      int counted, int need_grad, int64_t n_pairs, int64_t nll_count,
                      double *stats) {
    const train_config *tc = c->tc;
    const int P = c->pairs, T = c->T, R = 2 * P, orpo = tc->objective == OBJECTIVE_ORPO;
    const int64_t N = (int64_t)R * T;
    double *rs = c->row_sum, *cnt = c->row_count;
    if (!orpo) {
        // The reference: the same plan with the adapter swapped, dropout off.
        const lora_adapter *own = p->lora;
        int training = p->training;
        p->lora = c->ref;
        p->training = 0;
        lm_forward_logps(p, b, c->logp);
        p->lora = own;
        p->training = training;
        row_sums(c->logp, resp, R, T, c->ref_sum, NULL);
    }
    lm_forward_logps(p, b, c->logp);
    row_sums(c->logp, resp, R, T, rs, cnt);
    if (need_grad) memset(c->weight, 0, (size_t)N * sizeof(float));
    const double inv_pairs = n_pairs ? 1.0 / (double)n_pairs : 0.0;
    for (int j = 0; j < counted; j++) {
        const int rows[2] = {j, P + j};
        double g[2], v[2], loss;
        if (!orpo) {
            double lr[2] = {rs[j] - c->ref_sum[j], rs[P + j] - c->ref_sum[P + j]};
            double n[2] = {cnt[j], cnt[P + j]};
            loss = dpo_pair(tc, lr, n, g);
            v[0] = rs[j];
            v[1] = rs[P + j];
            stats[PREF_REWARD_CHOSEN] += tc->dpo_beta * lr[0];
            stats[PREF_REWARD_REJECTED] += tc->dpo_beta * lr[1];
            stats[PREF_ACCURACY] += tc->dpo_beta * lr[0] > tc->dpo_beta * lr[1];
        } else {
            // ORPO on mean response log-probabilities a: log odds = (a_c - a_r) -
            // (log(1 - e^a_c) - log(1 - e^a_r)); the term is -beta log sigmoid(log odds).
            const double beta = tc->orpo_beta;
            double nc = cnt[j] > 1.0 ? cnt[j] : 1.0, nr = cnt[P + j] > 1.0 ? cnt[P + j] : 1.0;
            double ac = rs[j] / nc, ar = rs[P + j] / nr;
            double lo = (ac - ar) - (log1mexp(ac) - log1mexp(ar));
            double ratio = log_sigmoid(lo);
            loss = -beta * ratio;
            double dlo = -beta * sigmoid(-lo);
            // d log odds / d a = 1 / (1 - e^a) for chosen, minus that for rejected.
            g[0] = dlo * (-1.0 / expm1(ac)) / nc;
            g[1] = dlo * (1.0 / expm1(ar)) / nr;
            v[0] = ac;
            v[1] = ar;
            stats[PREF_REWARD_CHOSEN] += beta * ac;
            stats[PREF_REWARD_REJECTED] += beta * ar;
            stats[PREF_ACCURACY] += beta * ac > beta * ar;
            stats[PREF_LOG_ODDS_RATIO] += ratio;
            stats[PREF_LOG_ODDS_CHOSEN] += lo;
        }
        stats[PREF_LOSS] += loss;
        stats[PREF_LOGP_CHOSEN] += v[0];
        stats[PREF_LOGP_REJECTED] += v[1];
        stats[PREF_PAIRS] += 1.0;
        if (!need_grad) continue;
        // d(loss)/d(logp) = g / n_pairs at each response token; the cross-entropy gradient
        // (softmax - onehot) is that of -logp, hence the minus sign.
        for (int k = 0; k < 2; k++)
            for (int t = 0; t < T; t++) {
                int64_t n = (int64_t)rows[k] * T + t;
                if (resp[n]) c->weight[n] = (float)(-g[k] * inv_pairs);
            }
    }
    if (orpo) {
        // NLL of the chosen rows over every target (prompt included, as TRL's ORPO does).
        const double inv_nll = nll_count ? 1.0 / (double)nll_count : 0.0;
        for (int64_t n = 0; n < (int64_t)counted * T; n++) {
            if (b->targets[n] < 0) continue;
            stats[PREF_NLL_SUM] -= c->logp[n];
            stats[PREF_NLL_COUNT] += 1.0;
            if (need_grad) c->weight[n] += (float)inv_nll;
        }
    }
    if (need_grad) lm_backward_weighted(p, b, c->weight);
}

double pref_finish(const train_config *tc, const double *s, double *m) {
    double P = s[PREF_PAIRS] > 0 ? s[PREF_PAIRS] : 1.0;
    m[PREF_M_REWARDS_CHOSEN] = s[PREF_REWARD_CHOSEN] / P;
    m[PREF_M_REWARDS_REJECTED] = s[PREF_REWARD_REJECTED] / P;
    m[PREF_M_REWARDS_MARGINS] = (s[PREF_REWARD_CHOSEN] - s[PREF_REWARD_REJECTED]) / P;
    m[PREF_M_REWARDS_ACCURACIES] = s[PREF_ACCURACY] / P;
    m[PREF_M_LOGPS_CHOSEN] = s[PREF_LOGP_CHOSEN] / P;
    m[PREF_M_LOGPS_REJECTED] = s[PREF_LOGP_REJECTED] / P;
    m[PREF_M_NLL_LOSS] = s[PREF_NLL_COUNT] > 0 ? s[PREF_NLL_SUM] / s[PREF_NLL_COUNT] : 0.0;
    m[PREF_M_LOG_ODDS_RATIO] = s[PREF_LOG_ODDS_RATIO] / P;
    m[PREF_M_LOG_ODDS_CHOSEN] = s[PREF_LOG_ODDS_CHOSEN] / P;
    double loss = s[PREF_LOSS] / P;
    if (tc->objective == OBJECTIVE_ORPO) loss += m[PREF_M_NLL_LOSS];
    return loss;
}
