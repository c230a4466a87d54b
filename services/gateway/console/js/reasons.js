// Why a customer is at risk, in the reader's language: each reason's figures worded by
// its signal. A reason kept before the figures existed shows its English sentence to an
// English reader and the signal's name to others.
import { lang, t, tOr } from "./i18n.js";
import { day, number, percent } from "./ui.js";

const WORDED = {
  order_frequency_drop: (f) => t("reason_order_frequency_drop", { ...f, expected: number(f.expected) }),
  order_overdue: (f) => {
    const base = f.cadence_days === null || f.cadence_days === undefined
      ? t("reason_order_overdue", f)
      : t(f.own_cadence === "yes" ? "reason_order_overdue_own" : "reason_order_overdue_typical", f);
    return f.lapsed_share === null || f.lapsed_share === undefined
      ? base
      : `${base}${t("reason_lapsed_share", { share: percent(f.lapsed_share), horizon_days: f.horizon_days })}`;
  },
  complaints_increase: (f) => t("reason_complaints_increase", f),
  interactions_fall: (f) => t("reason_interactions_fall", f),
  key_contact_changed: (f) => t("reason_key_contact_changed", f),
  refunds_rising: (f) => t("reason_refunds_rising", f),
  nps_detractor: (f) => t("reason_nps_detractor", f),
  contract_ending: (f) => t("reason_contract_ending", { ...f, ends_on: day(f.ends_on) }),
  loyalty_quiet: (f) => t("reason_loyalty_quiet", f),
};

export function reasonText(reason) {
  const worded = WORDED[reason.signal];
  if (worded && reason.figures && Object.keys(reason.figures).length) return worded(reason.figures);
  return lang() === "en" && reason.sentence ? reason.sentence : tOr(`signal_${reason.signal}`, reason.signal);
}
